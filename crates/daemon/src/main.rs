fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `berthd jobs …`: the client for the running daemon's `/berth/jobs`.
    if args.first().map(String::as_str) == Some("jobs") {
        return berth_daemon::jobscli::main(&args[1..]);
    }
    berth_daemon::main_daemon()
}
