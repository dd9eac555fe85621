//! Printing results: `-o json` prints the service's view exactly (camelCase keys, stable for
//! scripts); `-o table` renders the same value as a table for people.

use super::CliError;
use clap::ValueEnum;
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;
use serde_json::Value;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A table for people.
    Table,
    /// JSON for scripts.
    Json,
}

/// Prints `value` in `format` on stdout.
pub(crate) fn print<T: Serialize>(format: Format, value: &T) -> Result<(), CliError> {
    let value = serde_json::to_value(value).map_err(|e| CliError::failed(format!("cannot render output: {e}")))?;
    let text = match format {
        Format::Json => serde_json::to_string_pretty(&value).expect("a JSON value serialises"),
        Format::Table => table(&value),
    };
    write_stdout(format!("{text}\n").as_bytes())
}

/// Writes to stdout; a closed pipe (`kamshub … | head`) ends the output quietly instead of
/// panicking.
pub(crate) fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CliError::failed(format!("cannot write output: {e}")))
        }
        _ => Ok(()),
    }
}

fn table(value: &Value) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
    match value {
        Value::Array(rows) if rows.is_empty() => return "(none)".to_owned(),
        Value::Array(rows) => {
            let flat: Vec<Vec<(String, String)>> = rows.iter().map(flatten).collect();
            let header: Vec<String> = flat[0].iter().map(|(k, _)| k.clone()).collect();
            table.set_header(&header);
            for row in flat {
                table.add_row(row.into_iter().map(|(_, v)| v));
            }
        }
        other => {
            for (key, value) in flatten(other) {
                table.add_row(vec![key, value]);
            }
        }
    }
    table.to_string()
}

/// An object as `(dotted.key, text)` pairs, nested objects flattened.
fn flatten(value: &Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&key, v, out);
                }
            }
            Value::String(s) => out.push((prefix.to_owned(), s.clone())),
            Value::Null => out.push((prefix.to_owned(), String::new())),
            other => out.push((prefix.to_owned(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    walk("", value, &mut out);
    out
}
