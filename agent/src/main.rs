//! `gravity`: the binary is a thin shell over the `agent` library.

fn main() -> std::process::ExitCode {
    agent::main()
}
