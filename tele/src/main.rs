//! `tele`: the binary is a thin shell over the `tele` library.

fn main() -> std::process::ExitCode {
    tele::main()
}
