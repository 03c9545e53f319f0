//! The `parq` binary.

fn main() -> std::process::ExitCode {
    parq_server::cli::main()
}
