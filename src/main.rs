//! The orgwarden binary: everything lives in the library; this only hands over to `cli`.
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    orgwarden::cli::main()
}
