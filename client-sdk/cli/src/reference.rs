//! `completions` and `man`: shell completion scripts and manual pages, made from the command
//! line's own definition, so that they name every command and flag of this build.

use std::path::Path;

use crate::{Failure, command, output::write_stdout as write_out};

/// Prints the completion script for `shell`.
pub(crate) fn completions(shell: clap_complete::Shell) -> Result<(), Failure> {
    let mut command = command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, "telesub-cli", &mut script);
    write_out(&script)
}

/// Prints the main manual page, or with `out` writes a page per command there.
pub(crate) fn man(out: Option<&Path>) -> Result<(), Failure> {
    let mut command = command().disable_help_subcommand(true);
    command.build();
    match out {
        None => write_out(&page(&command)?),
        Some(dir) => {
            let cannot = |e: std::io::Error| {
                Failure::Message(format!("cannot write the manual pages in {}: {e}", dir.display()))
            };
            std::fs::create_dir_all(dir).map_err(cannot)?;
            let mut written = 0;
            write_pages(&command, dir, &mut written).map_err(cannot)?;
            outln!("{written} manual pages written in {}", dir.display());
            Ok(())
        }
    }
}

/// The pages of `command` and of every command under it, as `clap_mangen::generate_to`
/// writes them (`telesub-cli-households-get.1`), each through [`page`].
fn write_pages(command: &clap::Command, dir: &Path, written: &mut usize) -> std::io::Result<()> {
    for sub in command.get_subcommands().filter(|c| !c.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    let name = clap_mangen::Man::new(command.clone()).get_filename();
    let text = page(command).map_err(|_| std::io::Error::other("cannot render the page"))?;
    std::fs::write(dir.join(name), text)?;
    *written += 1;
    Ok(())
}

/// One command's page. clap_mangen titles the text under the help `EXTRA`; here it is always
/// the exit statuses, and man pages call that section `EXIT STATUS`.
fn page(command: &clap::Command) -> Result<Vec<u8>, Failure> {
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone())
        .render(&mut page)
        .map_err(|e| Failure::Message(format!("writing the manual page: {e}")))?;
    let text = String::from_utf8_lossy(&page).replace("\n.SH EXTRA\n", "\n.SH \"EXIT STATUS\"\n");
    Ok(text.into_bytes())
}
