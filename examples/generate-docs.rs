//! Writes the man page and shell completions from the clap definition, so
//! that they never drift from `--help`:
//!
//!     cargo run --example generate-docs -- OUT_DIR
//!
//! OUT_DIR receives `xmpp-token-auth.1`, `xmpp-token-auth.bash`,
//! `_xmpp-token-auth` (zsh) and `xmpp-token-auth.fish` (packaging/build.sh
//! does this). The man page is also committed as `docs/xmpp-token-auth.1`;
//! after changing the command line, rewrite it with
//!
//!     cargo run --example generate-docs -- --update
//!
//! and `--check` exits 1 when it differs from the generated one (the test
//! `tests/man_page.rs` makes the same comparison).

use clap::CommandFactory;
use clap_complete::Shell;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use xmpp_token_auth::cli::{Cli, EXIT_STATUS};
use xmpp_token_auth::core::config::KEYS;

const NAME: &str = "xmpp-token-auth";

/// The committed man page, relative to the crate's root.
pub const COMMITTED_MAN_PAGE: &str = "docs/xmpp-token-auth.1";

/// An entry of a section: a tag (a path, a variable) and what it is.
type Entry = (&'static str, &'static str);

const FILES: &[Entry] = &[
    (
        "/etc/xmpp-token-auth/config.toml",
        "The configuration (TOML), unless --config or $XMPP_TOKEN_AUTH_CONFIG names another. \
         It must be readable by the XMPP server's user and by no one else.",
    ),
    (
        "/etc/xmpp-token-auth/token_secret, /etc/xmpp-token-auth/otp_seed",
        "The keys the packaged configuration reads (token_secret_file, otp_seed_file), \
         generated at installation.",
    ),
    (
        "/var/lib/xmpp-token-auth/replay",
        "The replay store shared by all helper processes (replay_store in the packaged \
         configuration), with its lock file replay.lock.",
    ),
];

const ENVIRONMENT: &[Entry] = &[(
    "XMPP_TOKEN_AUTH_CONFIG",
    "Path of the configuration file when --config is not given.",
)];

/// Sections of paragraphs, after EXIT STATUS.
const CLOSING_SECTIONS: &[(&str, &str)] = &[
    (
        "SIGNALS",
        "SIGTERM, SIGINT and SIGHUP end the helper with status 0 once the reply in progress is \
         written. The XMPP server starts a new helper, which reads the configuration anew.",
    ),
    (
        "SEE ALSO",
        "The README in /usr/share/doc/xmpp-token-auth/ covers configuration, ejabberd and Prosody \
         set-up, minting tokens in an application, and troubleshooting.",
    ),
];

fn main() -> ExitCode {
    let usage = "usage: generate-docs OUT_DIR | --update | --check";
    let Some(arg) = std::env::args().nth(1) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join(COMMITTED_MAN_PAGE);
    let done = match arg.as_str() {
        "--update" => std::fs::write(&committed, man_page()),
        "--check" => match std::fs::read(&committed) {
            Ok(text) if text == man_page() => Ok(()),
            Ok(_) => {
                eprintln!(
                    "{COMMITTED_MAN_PAGE} differs from the command line's definition: \
                     run `cargo run --example generate-docs -- --update` and commit it"
                );
                return ExitCode::FAILURE;
            }
            Err(e) => Err(e),
        },
        flag if flag.starts_with('-') => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
        out => write_all(&PathBuf::from(out)),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("generate-docs: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The man page and the completions into `out`.
fn write_all(out: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join(format!("{NAME}.1")), man_page())?;
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut Cli::command(), NAME, out)?;
    }
    Ok(())
}

/// The man page, in roff.
pub fn man_page() -> Vec<u8> {
    let mut page = Vec::new();
    render_man_page(&mut page).expect("writing to a Vec cannot fail");
    page
}

fn render_man_page(page: &mut Vec<u8>) -> std::io::Result<()> {
    let command = Cli::command();
    let man = clap_mangen::Man::new(command.clone());
    man.render_title(page)?;
    man.render_name_section(page)?;
    man.render_synopsis_section(page)?;
    man.render_description_section(page)?;
    man.render_options_section(page)?;
    render_commands(&command, page);
    render_entries("CONFIGURATION", KEYS.iter().copied(), page);
    render_entries("FILES", FILES.iter().copied(), page);
    render_entries("ENVIRONMENT", ENVIRONMENT.iter().copied(), page);
    let statuses: Vec<(String, &str)> = EXIT_STATUS
        .iter()
        .map(|(code, meaning)| (code.to_string(), *meaning))
        .collect();
    render_entries(
        "EXIT STATUS",
        statuses
            .iter()
            .map(|(code, meaning)| (code.as_str(), *meaning)),
        page,
    );
    for (title, body) in CLOSING_SECTIONS {
        page.extend_from_slice(format!(".SH \"{title}\"\n").as_bytes());
        for paragraph in body.split('\n') {
            page.extend_from_slice(format!("{}\n.PP\n", roff_escape(paragraph)).as_bytes());
        }
    }
    man.render_version_section(page)
}

/// A section of tagged paragraphs (`.TP`).
fn render_entries<'a>(
    title: &str,
    entries: impl Iterator<Item = (&'a str, &'a str)>,
    page: &mut Vec<u8>,
) {
    let mut out = format!(".SH \"{title}\"\n");
    for (tag, body) in entries {
        out.push_str(&format!(
            ".TP\n\\fB{}\\fR\n{}\n",
            roff_escape(tag),
            roff_escape(body)
        ));
    }
    page.extend_from_slice(out.as_bytes());
}

/// One COMMANDS section with every subcommand, its arguments and options,
/// rather than clap_mangen's pointers to one page per subcommand.
fn render_commands(command: &clap::Command, page: &mut Vec<u8>) {
    let mut out = String::from(".SH COMMANDS\n");
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        let args: Vec<&clap::Arg> = sub
            .get_arguments()
            .filter(|a| !a.is_global_set() && !matches!(a.get_id().as_str(), "help" | "version"))
            .collect();
        let mut synopsis = format!("\\fB{}\\fR", roff_escape(sub.get_name()));
        for arg in &args {
            let value = arg
                .get_value_names()
                .map(|names| names.join(" "))
                .unwrap_or_else(|| arg.get_id().to_string().to_uppercase());
            match arg.get_long() {
                None => synopsis.push_str(&format!(" \\fI{}\\fR", roff_escape(&value))),
                Some(long) => synopsis.push_str(&format!(
                    " [\\fB\\-\\-{}\\fR \\fI{}\\fR]",
                    roff_escape(long),
                    roff_escape(&value)
                )),
            }
        }
        out.push_str(&format!(".TP\n{synopsis}\n"));
        if let Some(about) = sub.get_about() {
            out.push_str(&format!("{}\n", roff_escape(&about.to_string())));
        }
        for arg in &args {
            let name = match arg.get_long() {
                Some(long) => format!("\\-\\-{}", roff_escape(long)),
                None => roff_escape(&arg.get_id().to_string().to_uppercase()),
            };
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            out.push_str(&format!(".RS\n.TP\n{name}\n{}\n.RE\n", roff_escape(&help)));
        }
    }
    page.extend_from_slice(out.as_bytes());
}

/// Keeps a line of text from being read as a roff request.
fn roff_escape(text: &str) -> String {
    let text = text.replace('\\', "\\e").replace('-', "\\-");
    match text.chars().next() {
        Some('.') | Some('\'') => format!("\\&{text}"),
        _ => text,
    }
}
