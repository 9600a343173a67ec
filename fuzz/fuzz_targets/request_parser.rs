//! The request parser (docs/protocol.md §3): any bytes give a request or a
//! reason it is malformed, never a panic; what is understood is exactly
//! what was sent (the fields written back with `:` are the input), user
//! and server are never empty and never hold `:`, and the password keeps
//! every `:` it had.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xmpp_token_auth::core::request::{Malformed, Request};

fn check_names(input: &[u8], user: &str, server: &str) {
    assert!(!user.is_empty() && !server.is_empty(), "{input:?}");
    assert!(!user.contains(':') && !server.contains(':'), "{input:?}");
}

fuzz_target!(|data: &[u8]| {
    let request = Request::parse(data);
    match request {
        Request::Auth {
            user,
            server,
            password,
        } => {
            check_names(data, user, server);
            assert_eq!(
                format!("auth:{user}:{server}:{password}").as_bytes(),
                data,
                "auth fields do not write back to the request"
            );
        }
        Request::IsUser { user, server } => {
            check_names(data, user, server);
            assert_eq!(format!("isuser:{user}:{server}").as_bytes(), data);
        }
        Request::Refused {
            command,
            user,
            server,
        } => {
            check_names(data, user, server);
            let head = format!("{}:{user}:{server}", command.name());
            // The commands with a password carry it after one more `:`.
            assert!(
                data == head.as_bytes() || data.starts_with(format!("{head}:").as_bytes()),
                "{data:?} is not {head}[:password]"
            );
            assert!(
                !matches!(command.name(), "auth" | "isuser"),
                "{data:?}: auth and isuser are never refused by the parser"
            );
        }
        Request::Malformed(why) => {
            // Nothing understood is refused as malformed.
            assert_eq!(why == Malformed::Empty, data.is_empty(), "{data:?}");
            assert_eq!(
                why == Malformed::NotUtf8,
                !data.is_empty() && std::str::from_utf8(data).is_err(),
                "{data:?}"
            );
            assert!(!why.to_string().is_empty());
            if let Ok(text) = std::str::from_utf8(data) {
                let mut fields = text.splitn(4, ':');
                let name = fields.next().unwrap_or("");
                let known = [
                    "auth",
                    "isuser",
                    "setpass",
                    "tryregister",
                    "removeuser",
                    "removeuser3",
                ];
                if known.contains(&name) {
                    assert_ne!(why, Malformed::UnknownCommand, "{data:?}");
                }
            }
        }
    }
    // Parsing twice gives the same answer: nothing is kept between calls.
    assert_eq!(Request::parse(data), request);
});
