//! Message templates through real services: what a template writes is escaped for each
//! platform like the default wording, and a title cannot ping anyone through it.

mod common;

use lookout::dispatch::preview_one;
use serde_json::{Value, json};

/// Literal markup and mass mentions in the template itself, plus the markup-laden title.
const HEADLINE: &str = "*NEW* @**everyone** <!channel> {{ item_title }} · {{ item_link }}";

/// Every string in a preview's request bodies, one per line.
fn sent_text(service: &str, template: Value) -> String {
    let reg = lookout::service::find(service).unwrap();
    let mut options = common::example_options(reg);
    options.insert("template".into(), template);
    let instance = common::instance(reg, &options);
    let preview = preview_one(&common::fixture("item-markup"), &instance);
    assert!(
        preview.not_sent.is_none(),
        "{service}: {:?}",
        preview.not_sent
    );
    let mut strings = Vec::new();
    for request in serde_json::to_value(&preview.requests)
        .unwrap()
        .as_array()
        .unwrap()
    {
        collect_strings(&request["body"], &mut strings);
    }
    strings.join("\n")
}

fn collect_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

fn check(service: &str, must: &[&str], must_not: &[&str]) {
    let text = sent_text(service, json!({ "headline": HEADLINE }));
    for expected in must {
        assert!(
            text.contains(expected),
            "{service}: no `{expected}` in\n{text}"
        );
    }
    for unexpected in must_not {
        assert!(
            !text.contains(unexpected),
            "{service}: `{unexpected}` in\n{text}"
        );
    }
}

#[test]
fn slack_escapes_a_template_like_its_own_words() {
    check(
        "slack",
        &[
            "*NEW* @**everyone** &lt;!channel&gt; &lt;b&gt;&amp;\"x\"&lt;/b&gt;",
            "<http://sprint.ly/i/1/116550/|#1212 - &lt;b&gt;",
        ],
        &["<!channel>", "<b>"],
    );
}

#[test]
fn discord_escapes_a_template_like_its_own_words() {
    let text = sent_text("discord", json!({ "headline": HEADLINE }));
    assert!(
        text.contains(r"\*NEW\* \@\*\*everyone\*\* \<!channel\>"),
        "{text}"
    );
    assert!(text.contains(r"[\#1212 \- \<b\>"), "{text}");
    // Every `@` is escaped: nobody is mentioned.
    let unescaped = text
        .match_indices('@')
        .any(|(i, _)| !text[..i].ends_with('\\'));
    assert!(!unescaped, "{text}");
}

#[test]
fn telegram_escapes_a_template_like_its_own_words() {
    check(
        "telegram",
        &[
            "*NEW* @**everyone** &lt;!channel&gt; &lt;b&gt;&amp;&quot;x&quot;&lt;/b&gt;",
            "<a href=\"http://sprint.ly/i/1/116550/\">#1212 - &lt;b&gt;",
        ],
        &["<!channel>", "<b>&"],
    );
}

#[test]
fn zulip_escapes_a_template_like_its_own_words() {
    check(
        "zulip",
        &[
            "&#42;NEW&#42; @&#42;&#42;everyone&#42;&#42; &lt;!channel&gt;",
            "[&#35;1212 - &lt;b&gt;",
        ],
        &["@**everyone**", "<!channel>", "*NEW*"],
    );
}

#[test]
fn a_title_template_is_plain_text_too() {
    let text = sent_text("discord", json!({ "title": "{{ item_title }} <@&123>" }));
    assert!(text.contains(r"\<\@&123\>"), "{text}");
}

#[test]
fn a_config_names_the_template_problem_with_line_and_column() {
    let config = r#"
[services.slack]
url = "https://hooks.slack.com/services/T0/B0/x"
template.title = "{{ titel }}"
template.headline = "ok {{ actor }}\n{% if %}"
"#;
    let err = lookout::Config::parse(config, "test.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "[services.slack] template.title: line 1, column 4: unknown variable `titel` (did you mean `title`?)"
        ),
        "{err}"
    );
    assert!(
        err.contains("[services.slack] template.headline: line 2, column"),
        "{err}"
    );
}
