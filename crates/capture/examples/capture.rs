//! `hangscope capture` without the rest of hangscope:
//! `cargo run -p hangscope-capture --example capture -- DOMAIN -o DIR [...]`.
use clap::Parser;

#[derive(Parser)]
#[command(name = "capture")]
struct Cli {
    #[command(flatten)]
    args: hangscope_capture::cli::CaptureArgs,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match hangscope_capture::cli::run(&cli.args) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hangscope: {} - {e}", e.name());
            std::process::ExitCode::from(2)
        }
    }
}
