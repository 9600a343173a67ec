//! The committed man page, `docs/xmpp-token-auth.1`, is the one generated
//! from the command line's definition (examples/generate-docs.rs).

#[allow(dead_code)] // only the man page is used here
#[path = "../examples/generate-docs.rs"]
mod generate_docs;

#[test]
fn the_committed_man_page_is_generated_from_the_command_line() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(generate_docs::COMMITTED_MAN_PAGE);
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    let generated = String::from_utf8(generate_docs::man_page()).unwrap();
    if committed != generated {
        let line = committed
            .lines()
            .zip(generated.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(committed.lines().count().min(generated.lines().count()));
        panic!(
            "{} differs from the command line's definition (first at line {}): \
             run `cargo run --example generate-docs -- --update` and commit it",
            generate_docs::COMMITTED_MAN_PAGE,
            line + 1
        );
    }
}
