fn main() -> std::process::ExitCode {
    berth_daemon::main_daemon()
}
