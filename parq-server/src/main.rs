//! The `parq` binary.

// mimalloc: a server's many short-lived allocations (requests, responses, events) cost a third
// of what the system allocator charges for them here, and its heap does not fragment as the
// store grows.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    parq_server::cli::main()
}
