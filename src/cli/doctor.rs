//! `kamshub doctor`: the deployment's checks as a table of OK/WARN/FAIL with the fix for each;
//! exit 1 on any FAIL.

use super::CliError;
use super::output::{Format, print, write_stdout};
use crate::app::App;
use crate::config::Provenance;
use crate::service::doctor::{self, Check, Status};
use comfy_table::{ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};

pub(crate) async fn run(app: &App, format: Format, provenance: &Provenance) -> Result<(), CliError> {
    let report = doctor::run(app, provenance).await;
    match format {
        Format::Json => print(format, &report)?,
        Format::Table => write_stdout(format!("{}\n", table(&report)).as_bytes())?,
    }
    if doctor::failed(&report) {
        let failed = report.iter().filter(|c| c.status == Status::Fail).count();
        return Err(CliError::failed(format!("{failed} checks failed")));
    }
    Ok(())
}

fn table(report: &[Check]) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header(["check", "status", "detail", "fix"]);
    for c in report {
        let status = match c.status {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        };
        table.add_row([c.check.as_str(), status, c.detail.as_str(), c.fix.as_deref().unwrap_or("")]);
    }
    table.to_string()
}
