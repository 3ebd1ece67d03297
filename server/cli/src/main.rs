use std::process::ExitCode;

use clap::Parser;

#[global_allocator]
static ALLOCATOR: telesub_server::Allocator = telesub_server::Allocator;

fn main() -> ExitCode {
    let cli = telesub_tools::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("telesub: cannot start the async runtime: {err}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(telesub_tools::cli::run(cli))
}
