//! Checks, for tests, that the HTML the box serves is translatable: every
//! piece of text a person reads is inside an element marked with a message
//! catalog key (`data-i18n`), every attribute a person reads is named in
//! `data-i18n-attr`, and the English in the HTML (the no-script text) equals
//! the English catalog's (`server/web/locales/en.json`). The browser test
//! (tests/web/i18n.test.mjs) then checks the pages as rendered in Chinese.

use std::collections::BTreeMap;

use serde_json::Value;

/// The catalogs the box carries, by language.
pub fn catalog(lang: &str) -> BTreeMap<String, Value> {
    let file =
        super::assets::text(&format!("locales/{lang}.json")).unwrap_or_else(|| panic!("no {lang}.json"));
    serde_json::from_slice(&file).unwrap_or_else(|e| panic!("{lang}.json: {e}"))
}

/// A catalog value as text: a plural object gives its `other` form.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Object(forms) => forms.get("other").and_then(Value::as_str).unwrap_or_default().to_owned(),
        _ => String::new(),
    }
}

/// `{name}` parameters of a catalog text, sorted.
pub fn parameters(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
        .filter(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Elements whose text is never translated: what is typed or compared
/// literally, and the box's name.
fn literal(tag: &str, class: &str) -> bool {
    matches!(tag, "code" | "script" | "style")
        || class.split_whitespace().any(|c| c == "digest" || c == "box-name")
}

/// Text that may stand outside a translated element: names and marks that
/// are the same in every language.
fn neutral(text: &str) -> bool {
    let mut rest = text.to_owned();
    // Template placeholders are filled with data.
    while let (Some(start), Some(end)) = (rest.find("{{"), rest.find("}}")) {
        if end < start {
            break;
        }
        rest.replace_range(start..end + 2, " ");
    }
    rest.split_whitespace().all(|word| matches!(word, "imbox" | "…" | "·" | "(" | ")" | "," | ":"))
}

const VOID: [&str; 6] = ["input", "img", "meta", "link", "br", "hr"];

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

fn attributes(tag: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = tag;
    while let Some(eq) = rest.find("=\"") {
        let name = rest[..eq].rsplit(|c: char| c.is_whitespace()).next().unwrap_or_default().to_owned();
        let after = &rest[eq + 2..];
        let Some(close) = after.find('"') else { break };
        out.insert(name, unescape(&after[..close]));
        rest = &after[close + 1..];
    }
    // Attributes without a value (hidden, required, data-language-switch).
    out
}

struct Frame {
    tag: String,
    key: Option<String>,
    params: Option<String>,
    slot: Option<String>,
    literal: bool,
    text: String,
}

/// What a page's HTML says, checked: the `(key, English)` pairs of its
/// marked elements and attributes (slots written `{name}`, parameters as
/// given in `data-i18n-params`), or the text a person would read that has
/// no key.
pub fn marked(html: &str) -> Result<Vec<(String, String, Option<String>)>, String> {
    let mut found = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut rest = html;
    loop {
        let (text, next) = match rest.find('<') {
            Some(at) => (&rest[..at], Some(at)),
            None => (rest, None),
        };
        let text = unescape(text);
        if !text.trim().is_empty() {
            let owner = stack.iter_mut().rev().find(|f| f.key.is_some() || f.slot.is_some() || f.literal);
            match owner {
                Some(f) if f.key.is_some() => f.text.push_str(&text),
                Some(_) => {}
                None if neutral(&text) => {}
                None => return Err(format!("text without a data-i18n key: {:?}", text.trim())),
            }
        }
        let Some(at) = next else { break };
        rest = &rest[at..];
        if let Some(comment) = rest.strip_prefix("<!--") {
            rest = comment.split_once("-->").map_or("", |(_, r)| r);
            continue;
        }
        let Some(end) = rest.find('>') else { return Err("a tag is not closed".into()) };
        let tag = &rest[1..end];
        rest = &rest[end + 1..];
        if tag.starts_with('!') {
            continue;
        }
        if let Some(name) = tag.strip_prefix('/') {
            let frame = stack.pop().ok_or_else(|| format!("</{name}> closes nothing"))?;
            if frame.tag != name.trim() {
                return Err(format!("</{name}> closes <{}>", frame.tag));
            }
            if let Some(key) = frame.key {
                found.push((key, frame.text.split_whitespace().collect::<Vec<_>>().join(" "), frame.params));
            }
            continue;
        }
        let name =
            tag.split(|c: char| c.is_whitespace() || c == '/').next().unwrap_or_default().to_lowercase();
        let attrs = attributes(tag);
        let translated_attrs: Vec<(String, String)> = attrs
            .get("data-i18n-attr")
            .map(|pairs| {
                pairs
                    .split_whitespace()
                    .filter_map(|p| p.split_once(':'))
                    .map(|(a, k)| (a.to_owned(), k.to_owned()))
                    .collect()
            })
            .unwrap_or_default();
        for attr in ["aria-label", "placeholder", "alt", "title"] {
            if let Some(value) = attrs.get(attr) {
                match translated_attrs.iter().find(|(a, _)| a == attr) {
                    Some((_, key)) => found.push((key.clone(), value.clone(), None)),
                    None => return Err(format!("<{name} {attr}={value:?}> has no data-i18n-attr")),
                }
            }
        }
        if let Some(slot) = attrs.get("data-i18n-slot") {
            if let Some(owner) = stack.iter_mut().rev().find(|f| f.key.is_some()) {
                owner.text.push_str(&format!("{{{slot}}}"));
            }
        }
        if VOID.contains(&name.as_str()) || tag.ends_with('/') {
            continue;
        }
        stack.push(Frame {
            // Text marked as being in a language of its own stays as it is.
            literal: literal(&name, attrs.get("class").map_or("", String::as_str))
                || (name != "html" && attrs.contains_key("lang")),
            tag: name,
            key: attrs.get("data-i18n").cloned(),
            params: attrs.get("data-i18n-params").cloned(),
            slot: attrs.get("data-i18n-slot").cloned(),
            text: String::new(),
        });
    }
    if let Some(open) = stack.last() {
        return Err(format!("<{}> is not closed", open.tag));
    }
    Ok(found)
}

/// Checks `html` as [`marked`] does, and that its English is the English
/// catalog's (with `data-i18n-params` filled in); panics with what is wrong.
/// Returns the keys used.
pub fn assert_translatable(what: &str, html: &str) -> Vec<String> {
    let en = catalog("en");
    let pairs = marked(html).unwrap_or_else(|e| panic!("{what}: {e}\n{html}"));
    for (key, english, params) in &pairs {
        let Some(value) = en.get(key) else {
            panic!("{what}: en.json has no {key:?} (the page says {english:?})")
        };
        let mut expected = text_of(value);
        if let Some(params) = params {
            let params: BTreeMap<String, Value> = serde_json::from_str(params)
                .unwrap_or_else(|e| panic!("{what}: {key}: bad params {params}: {e}"));
            for (name, value) in params {
                let value = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
                expected = expected.replace(&format!("{{{name}}}"), &value);
            }
        }
        let expected = expected.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(english, &expected, "{what}: the English of {key:?} differs from en.json");
    }
    pairs.into_iter().map(|(key, ..)| key).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_without_a_key_is_found_and_slots_keep_their_place() {
        assert!(marked("<p>Hello</p>").unwrap_err().contains("Hello"));
        assert!(marked("<button aria-label=\"Close\">x</button>").is_err(), "an attribute without a key");
        let pairs = marked(
            "<p data-i18n=\"a\">Open <code data-i18n-slot=\"file\">x.txt</code> now</p>\
             <span class=\"box-name\">Kitchen</span> imbox <p lang=\"en\">as the disk said</p>",
        )
        .unwrap();
        assert_eq!(pairs, vec![("a".to_owned(), "Open {file} now".to_owned(), None)]);
        assert_eq!(parameters("{b} and {a} {b}"), vec!["a", "b"]);
    }
}
