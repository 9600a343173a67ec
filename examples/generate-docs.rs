//! Writes the man page and shell completions from the clap definition, so
//! that they never drift from `--help`:
//!
//!     cargo run --example generate-docs -- OUT_DIR
//!
//! OUT_DIR receives `xmpp-token-auth.1`, `xmpp-token-auth.bash`,
//! `_xmpp-token-auth` (zsh) and `xmpp-token-auth.fish`.

use clap::CommandFactory;
use clap_complete::Shell;
use std::path::PathBuf;
use xmpp_token_auth::cli::Cli;

const NAME: &str = "xmpp-token-auth";

/// Sections a CLI reference alone does not give an operator.
const EXTRA_SECTIONS: &[(&str, &str)] = &[
    (
        "FILES",
        "/etc/xmpp-token-auth/config.toml\n\
         The configuration (TOML), unless --config or $XMPP_TOKEN_AUTH_CONFIG names another. \
         It must be readable by the XMPP server's user and by no one else.\n\
         /etc/xmpp-token-auth/token_secret, /etc/xmpp-token-auth/otp_seed\n\
         The keys the packaged configuration reads (token_secret_file, otp_seed_file), \
         generated at installation.\n\
         /var/lib/xmpp-token-auth/replay\n\
         The replay store shared by all helper processes (replay_store in the packaged \
         configuration), with its lock file replay.lock.",
    ),
    (
        "ENVIRONMENT",
        "XMPP_TOKEN_AUTH_CONFIG\nPath of the configuration file when --config is not given.",
    ),
    (
        "EXIT STATUS",
        "0: success, a valid token (verify), or any end of serving (end of input, hang-up, \
         signal, closed stdout).\n\
         1: verify found the token invalid.\n\
         2: the configuration or the command line is invalid; the message names the file, line and key.",
    ),
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

fn main() -> std::io::Result<()> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .expect("usage: generate-docs OUT_DIR"),
    );
    std::fs::create_dir_all(&out)?;
    let command = Cli::command();

    let mut page = Vec::new();
    let man = clap_mangen::Man::new(command.clone());
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    man.render_options_section(&mut page)?;
    render_commands(&command, &mut page);
    for (title, body) in EXTRA_SECTIONS {
        page.extend_from_slice(format!(".SH \"{title}\"\n").as_bytes());
        for paragraph in body.split('\n') {
            page.extend_from_slice(format!("{}\n.PP\n", roff_escape(paragraph)).as_bytes());
        }
    }
    man.render_version_section(&mut page)?;
    std::fs::write(out.join(format!("{NAME}.1")), page)?;

    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut command.clone(), NAME, &out)?;
    }
    Ok(())
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
