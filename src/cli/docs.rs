//! `kamshub completions` and `kamshub man`: generated from the clap definition, so they cannot
//! drift from the real flags. The committed `completions/` and `man/` are checked by a test.

use super::{Cli, CliError};
use clap::CommandFactory;
use std::path::Path;

/// Prints the completion script for `shell` on stdout.
pub(crate) fn completions(shell: clap_complete::Shell) -> Result<(), CliError> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "kamshub", &mut script);
    super::output::write_stdout(&script)
}

/// Writes `kamshub.1` and a page per subcommand (`kamshub-tenant-create.1`, ...) into `dir`.
pub(crate) fn man(dir: &Path) -> Result<(), CliError> {
    std::fs::create_dir_all(dir).map_err(|e| CliError::failed(format!("cannot create {}: {e}", dir.display())))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .map_err(|e| CliError::failed(format!("cannot write man pages to {}: {e}", dir.display())))
}
