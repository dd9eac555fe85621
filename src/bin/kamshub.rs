//! The `kamshub` binary: parse the command line, run, exit with 0, 1 or 2.

fn main() -> std::process::ExitCode {
    kamshub::cli::main()
}
