//! The orgwarden binary: everything lives in the library; this only hands over to `cli`.
#![forbid(unsafe_code)]

/// mimalloc rather than the system allocator: a snapshot or an audit of a large organization is
/// hundreds of thousands of small strings made and freed, often on another thread than the one
/// that made them; glibc's allocator spent about a third of a 5x audit consolidating and
/// returning them (perf), mimalloc a small fraction of that. Built without transparent huge
/// pages (`no_thp`): with them a 5x snapshot's peak RSS grew from 70 to 117 MB.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    orgwarden::cli::main()
}
