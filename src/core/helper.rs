//! One request in, one decision out: the policy of docs/protocol.md §3 over
//! a validated [`Config`] and a [`ReplayCache`]. Pure: the caller passes the
//! time.

use crate::core::config::{Config, IsUserPolicy};
use crate::core::frame::Frame;
use crate::core::replay::{self, ReplayCache, ReplayError, ReplayMemory, TokenId};
use crate::core::request::{self, Command, Request};
use crate::core::token::Token;
use crate::core::verify::{self, Refusal, Verified};
use std::fmt;
use std::hint::black_box;

/// Longest user or server shown in a log line; longer ones are cut.
const LOGGED_NAME_MAX: usize = 128;

pub struct Helper {
    config: Config,
    replay: Box<dyn ReplayMemory + Send>,
}

/// The answer to one request and what the log should say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<'a> {
    /// The request's command; `None` when the request could not be
    /// understood (malformed or too long), logged as `request`.
    pub command: Option<Command>,
    /// `(user, server)` when the request named them.
    pub jid: Option<(&'a str, &'a str)>,
    /// Why the answer is false; `None` when it is true.
    pub reason: Option<Reason>,
}

/// Why a request is answered false.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    #[error("request too long")]
    TooLong,
    #[error("{0}")]
    Malformed(request::Malformed),
    #[error("{0}")]
    Token(Refusal),
    #[error("{0}")]
    Replay(ReplayError),
    /// The configuration has no keys for the request's domain: `auth` and
    /// `isuser` (under `isuser = "served-domains"`) alike.
    #[error("unknown domain")]
    UnknownDomain,
    #[error("isuser = \"never\"")]
    PolicyNever,
    #[error("accounts are managed by the application, not by the XMPP server")]
    ReadOnly,
    /// No usable configuration: see [`Service::Unconfigured`].
    #[error(
        "no usable configuration: every request is refused until the files named in the error logged before are fixed"
    )]
    Unconfigured,
}

impl Decision<'_> {
    /// The reply: true exactly when nothing was wrong.
    pub fn verdict(&self) -> bool {
        self.reason.is_none()
    }

    /// An accepted login, final only once the batch it was read in is
    /// committed ([`Service::commit`]).
    pub fn awaits_commit(&self) -> bool {
        self.command == Some(Command::Auth) && self.verdict()
    }

    /// What the decision is about, as its log line starts: `auth
    /// alice@example.org`.
    pub fn subject(&self) -> Subject<'_> {
        Subject(self)
    }

    /// For refusals an operator must act on, not just note: the alarm, as
    /// what its lines are grouped by when they repeat (its kind, and for a
    /// failing store the path and the cause, so a new cause is logged at
    /// once).
    pub fn alarm(&self) -> Option<String> {
        self.reason.as_ref().and_then(Reason::alarm)
    }
}

impl Reason {
    /// See [`Decision::alarm`].
    pub fn alarm(&self) -> Option<String> {
        match self {
            Reason::Replay(ReplayError::Full(_)) => Some("replay memory full".into()),
            Reason::Replay(ReplayError::Store(cause)) => {
                Some(format!("replay store failed: {cause}"))
            }
            Reason::Unconfigured => Some("no usable configuration".into()),
            _ => None,
        }
    }
}

/// What answers requests: a configured [`Helper`], or, while the
/// configuration (or a key file, or the replay store) cannot be used, only
/// refusals. A helper under ejabberd that exited at start would be
/// restarted in a loop until ejabberd gives up on its whole pool; one that
/// stays up refusing heals as soon as the files are fixed.
#[allow(clippy::large_enum_variant)] // one per process, never moved in a loop
pub enum Service {
    Ready(Helper),
    Unconfigured,
}

impl Service {
    pub fn answer<'a>(&mut self, frame: Frame<'a>, now: u64) -> Decision<'a> {
        match self {
            Service::Ready(helper) => helper.answer(frame, now),
            Service::Unconfigured => decide(frame, |_| Err(Reason::Unconfigured)),
        }
    }

    /// [`ReplayMemory::begin`]: the frames answered until [`Service::commit`]
    /// were read together.
    pub fn begin(&mut self) {
        if let Service::Ready(helper) = self {
            helper.replay.begin();
        }
    }

    /// [`ReplayMemory::commit`]: on an error, every login accepted since
    /// [`Service::begin`] must be refused (see [`Decision::awaits_commit`]).
    pub fn commit(&mut self) -> Result<(), ReplayError> {
        match self {
            Service::Ready(helper) => helper.replay.commit(),
            Service::Unconfigured => Ok(()),
        }
    }
}

/// The decision for `frame`, with `outcome` judging a request that could
/// be parsed.
fn decide<'a>(
    frame: Frame<'a>,
    outcome: impl FnOnce(&Request<'a>) -> Result<(), Reason>,
) -> Decision<'a> {
    let request = match frame {
        Frame::TooLong => {
            return Decision {
                command: None,
                jid: None,
                reason: Some(Reason::TooLong),
            };
        }
        Frame::Request(bytes) => Request::parse(bytes),
    };
    let jid = match request {
        Request::Auth { user, server, .. }
        | Request::IsUser { user, server }
        | Request::Refused { user, server, .. } => Some((user, server)),
        Request::Malformed(_) => None,
    };
    let reason = match &request {
        Request::Malformed(why) => Some(Reason::Malformed(*why)),
        parsed => outcome(parsed).err(),
    };
    Decision {
        command: request.command(),
        jid,
        reason,
    }
}

impl Helper {
    /// A helper that remembers accepted tokens in its own memory.
    pub fn new(config: Config) -> Helper {
        let replay = Box::new(ReplayCache::reserved(config.replay_cache_size));
        Helper { config, replay }
    }

    /// A helper that remembers accepted tokens in `replay`, such as a store
    /// shared with other helper processes.
    pub fn with_replay_memory(config: Config, replay: Box<dyn ReplayMemory + Send>) -> Helper {
        Helper { config, replay }
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Takes a new configuration (new keys, policy, token shape) and keeps
    /// the replay memory: a reload must not forget used tokens. Returns the
    /// old one.
    pub fn reconfigure(&mut self, config: Config) -> Config {
        std::mem::replace(&mut self.config, config)
    }

    /// Answers one frame at unix time `now`: the reply, and what to log.
    pub fn answer<'a>(&mut self, frame: Frame<'a>, now: u64) -> Decision<'a> {
        decide(frame, |request| match *request {
            Request::Auth {
                user,
                server,
                password,
            } => self.auth(user, server, password, now),
            Request::IsUser { server, .. } => self.isuser(server),
            Request::Refused { .. } => Err(Reason::ReadOnly),
            Request::Malformed(why) => Err(Reason::Malformed(why)),
        })
    }

    fn isuser(&self, server: &str) -> Result<(), Reason> {
        match self.config.isuser {
            IsUserPolicy::Always => Ok(()),
            IsUserPolicy::ServedDomains if self.config.keys_for(server).is_some() => Ok(()),
            IsUserPolicy::ServedDomains => Err(Reason::UnknownDomain),
            IsUserPolicy::Never => Err(Reason::PolicyNever),
        }
    }

    fn auth(&mut self, user: &str, server: &str, password: &str, now: u64) -> Result<(), Reason> {
        let config = &self.config;
        let keys = config.keys_for(server).ok_or(Reason::UnknownDomain)?;
        let params = config.tokens;
        let token = Token::parse(password, params.otp_digits, params.nonce_digits)
            .map_err(|why| Reason::Token(Refusal::Malformed(why)))?;
        // Computed and looked up whatever the outcome: a refused token then
        // costs what an accepted one does but for the write, so the time a
        // reply takes does not tell which check failed (the bench holds
        // them within 10%).
        let key = replay::key(&TokenId {
            user,
            server,
            otp: token.otp(),
            nonce: token.nonce(),
        });
        match verify::check(keys, params, &token, user, server, now) {
            Ok(verified) if config.replay_protection => self
                .replay
                .record(key, now, verified.remember_until)
                .map_err(Reason::Replay),
            Ok(_) => Ok(()),
            Err(refusal) => {
                black_box(self.replay.recalls(&key, now));
                Err(Reason::Token(refusal))
            }
        }
    }
}

/// Whether `token` is valid for `user@server` at unix time `now` under
/// `config`: every check of an `auth` request but the replay memory's. The
/// `verify` command shows this verdict without recording anything.
pub fn check_token<'t>(
    config: &Config,
    user: &str,
    server: &str,
    token: &'t str,
    now: u64,
) -> Result<Verified<'t>, Reason> {
    let keys = config.keys_for(server).ok_or(Reason::UnknownDomain)?;
    verify::verify(keys, config.tokens, user, server, token, now).map_err(Reason::Token)
}

/// Writes a user-supplied name so that it cannot forge or split a log line.
fn write_name(f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
    for (i, c) in name.chars().enumerate() {
        if i == LOGGED_NAME_MAX {
            return f.write_str("…");
        }
        if c.is_control() {
            write!(f, "{}", c.escape_default())?;
        } else {
            write!(f, "{c}")?;
        }
    }
    Ok(())
}

/// See [`Decision::subject`].
pub struct Subject<'d>(&'d Decision<'d>);

impl fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.command.map_or("request", Command::name))?;
        if let Some((user, server)) = self.0.jid {
            f.write_str(" ")?;
            write_name(f, user)?;
            f.write_str("@")?;
            write_name(f, server)?;
        }
        Ok(())
    }
}

/// `auth alice@example.org: refused (bad signature)`: no password, ever.
impl fmt::Display for Decision<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.subject())?;
        match &self.reason {
            None => f.write_str(": accepted"),
            Some(reason) => write!(f, ": refused ({reason})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::TextFile;
    use crate::core::verify::tests::keys;
    use crate::test_vectors as vectors;
    use std::path::Path;

    const SECRET: &str = "JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7";
    const SEED: &str = "XVGR73KMZH2M4XMY";
    const NOW: u64 = 1_764_300_000;

    fn helper(extra: &str) -> Helper {
        let text = format!("token_secret = \"{SECRET}\"\notp_seed = \"{SEED}\"\n{extra}");
        let no_files = |_: &Path| -> Result<TextFile, _> { unreachable!() };
        Helper::new(Config::parse(&text, Path::new("test.toml"), &no_files).unwrap())
    }

    /// A token whose nonce is `nonce` zero-padded to the default 32 digits.
    fn token(user: &str, server: &str, nonce: &str, at: u64) -> String {
        verify::generate(
            &keys(SECRET, SEED),
            Default::default(),
            user,
            server,
            &format!("{nonce:0>32}"),
            at,
        )
    }

    fn auth(
        helper: &mut Helper,
        user: &str,
        server: &str,
        password: &str,
        now: u64,
    ) -> Decision<'static> {
        let request = format!("auth:{user}:{server}:{password}")
            .into_bytes()
            .leak();
        helper.answer(Frame::Request(request), now)
    }

    #[test]
    fn every_vector_of_this_seed_gets_its_verdict_through_an_auth_request() {
        let mut compared = 0;
        for v in vectors::load()
            .tokens
            .into_iter()
            .filter(|v| v.otp_seed == SEED && v.token_secret == SECRET && !v.jid.contains(':'))
        {
            let (user, server) = v.user_server();
            let mut helper = helper(&v.settings.as_toml());
            let decision = auth(&mut helper, user, server, &v.token, v.at);
            assert_eq!(decision.verdict(), v.valid, "{}: {decision}", v.name);
            compared += 1;
        }
        assert!(compared >= 15, "only {compared} vectors compared");
    }

    #[test]
    fn a_replayed_token_is_refused_until_it_expires() {
        let mut helper = helper("");
        let token = token("alice", "example.com", "1234", NOW);
        assert!(auth(&mut helper, "alice", "example.com", &token, NOW).verdict());
        let again = auth(&mut helper, "alice", "example.com", &token, NOW + 5);
        assert_eq!(again.reason, Some(Reason::Replay(ReplayError::Replayed)));
        assert_eq!(
            again.to_string(),
            "auth alice@example.com: refused (token was already used)"
        );
    }

    #[test]
    fn replay_protection_can_be_turned_off() {
        let mut helper = helper("replay_protection = false\n");
        let token = token("alice", "example.com", "1234", NOW);
        assert!(auth(&mut helper, "alice", "example.com", &token, NOW).verdict());
        assert!(auth(&mut helper, "alice", "example.com", &token, NOW).verdict());
    }

    #[test]
    fn a_full_replay_cache_refuses_loudly() {
        let mut helper = helper("replay_cache_size = 1\n");
        assert!(
            auth(
                &mut helper,
                "a",
                "example.com",
                &token("a", "example.com", "1", NOW),
                NOW
            )
            .verdict()
        );
        let full = auth(
            &mut helper,
            "b",
            "example.com",
            &token("b", "example.com", "1", NOW),
            NOW,
        );
        assert!(!full.verdict() && full.alarm().is_some(), "{full}");
    }

    #[test]
    fn a_clock_stepped_forward_and_back_never_reopens_a_used_token() {
        // One entry of room: a forward step that made the cache sweep would
        // forget the used token if entries were dropped at their expiry.
        // Steps up to one token lifetime (90 s by default) are covered.
        let mut helper = helper("replay_cache_size = 1\n");
        let used = token("a", "example.com", "1", NOW);
        assert!(auth(&mut helper, "a", "example.com", &used, NOW).verdict());
        for step in [30, 60, 90] {
            let ahead = NOW + step;
            let fresh = token("b", "example.com", &step.to_string(), ahead);
            let decision = auth(&mut helper, "b", "example.com", &fresh, ahead);
            assert!(!decision.verdict(), "{step} s ahead: {decision}");
        }
        let back = auth(&mut helper, "a", "example.com", &used, NOW + 1);
        assert_eq!(back.reason, Some(Reason::Replay(ReplayError::Replayed)));
    }

    #[test]
    fn isuser_follows_the_policy() {
        let domains =
            "[domains.\"listed.example\"]\ntoken_secret = \"JYXEX4IQOEYFYQ2S3MC5P4ZT4SDHYEA7\"\n";
        let cases = [
            ("", "any.example", true),
            ("isuser = \"never\"\n", "any.example", false),
            ("isuser = \"always\"\n", "any.example", true),
        ];
        for (policy, server, expected) in cases {
            let decision = helper(policy).answer(
                Frame::Request(format!("isuser:bob:{server}").leak().as_bytes()),
                NOW,
            );
            assert_eq!(decision.verdict(), expected, "{policy}");
        }
        // Without a global secret, only listed domains are served.
        let text = format!("otp_seed = \"{SEED}\"\n{domains}");
        let config = Config::parse(&text, Path::new("t"), &|_: &Path| unreachable!()).unwrap();
        let mut helper = Helper::new(config);
        assert!(
            helper
                .answer(Frame::Request(b"isuser:bob:listed.example"), NOW)
                .verdict()
        );
        assert!(
            !helper
                .answer(Frame::Request(b"isuser:bob:other.example"), NOW)
                .verdict()
        );
        let token = token("bob", "other.example", "1", NOW);
        let decision = auth(&mut helper, "bob", "other.example", &token, NOW);
        assert_eq!(decision.reason, Some(Reason::UnknownDomain));
        assert_eq!(
            decision.to_string(),
            "auth bob@other.example: refused (unknown domain)"
        );
        let decision = helper.answer(Frame::Request(b"isuser:bob:other.example"), NOW);
        assert_eq!(decision.reason, Some(Reason::UnknownDomain));
        assert_eq!(
            decision.to_string(),
            "isuser bob@other.example: refused (unknown domain)"
        );
    }

    #[test]
    fn account_changes_and_junk_are_refused() {
        let mut helper = helper("");
        for request in [
            &b"setpass:a:b:c"[..],
            b"tryregister:a:b:c",
            b"removeuser:a:b",
            b"removeuser3:a:b:c",
            b"certauth:a:b",
            b"",
            b"\xff",
        ] {
            assert!(
                !helper.answer(Frame::Request(request), NOW).verdict(),
                "{request:?}"
            );
        }
        assert!(!helper.answer(Frame::TooLong, NOW).verdict());
    }

    #[test]
    fn log_lines_name_the_command_or_say_request() {
        let mut helper = helper("");
        for (frame, line) in [
            (
                Frame::Request(b"setpass:a:example.com:p"),
                "setpass a@example.com: refused (accounts are managed by the application, not by the XMPP server)",
            ),
            (
                Frame::Request(b"isuser:a:example.com"),
                "isuser a@example.com: accepted",
            ),
            (
                Frame::Request(b"auth:a:example.com"),
                "request: refused (wrong number of fields for auth)",
            ),
            (
                Frame::Request(b"AUTH:a:example.com:p"),
                "request: refused (unknown command)",
            ),
            (Frame::TooLong, "request: refused (request too long)"),
        ] {
            assert_eq!(helper.answer(frame, NOW).to_string(), line);
        }
        let decision = helper.answer(Frame::Request(b"removeuser:a:example.com"), NOW);
        assert_eq!(decision.command, Some(Command::RemoveUser));
    }

    #[test]
    fn log_lines_never_carry_the_password_and_escape_control_characters() {
        let mut helper = helper("");
        let decision = auth(
            &mut helper,
            "eve\nauth x",
            "example.com",
            "hunter2:secret",
            NOW,
        );
        let line = decision.to_string();
        assert!(!line.contains("hunter2") && !line.contains('\n'), "{line}");
        assert!(
            line.starts_with("auth eve\\nauth x@example.com: refused (malformed token"),
            "{line}"
        );
        let long = "u".repeat(1000);
        assert!(
            auth(&mut helper, &long, "example.com", "x", NOW)
                .to_string()
                .len()
                < 300
        );
    }
}
