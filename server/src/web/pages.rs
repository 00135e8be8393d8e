//! The pages: HTML, CSS and JavaScript embedded in the binary
//! (`server/web/`), so that the box serves everything itself and nothing is
//! loaded from the internet. Each page is a fragment put into one layout;
//! the script fills it from the JSON API.

use hyper::http::request::Parts;
use hyper::{Method, StatusCode};

use super::error::ApiError;
use super::reply::{self, Reply};
use super::routes::https_origin;
use super::Web;

const LANDING: &str = include_str!("../../web/pages/landing.html");
const SETUP: &str = include_str!("../../web/pages/setup.html");
const WELCOME: &str = include_str!("../../web/pages/welcome.html");
const LOGIN: &str = include_str!("../../web/pages/login.html");
const STATUS: &str = include_str!("../../web/pages/status.html");
const USERS: &str = include_str!("../../web/pages/users.html");
const INVITES: &str = include_str!("../../web/pages/invites.html");
const SETTINGS: &str = include_str!("../../web/pages/settings.html");
const MEMBER: &str = include_str!("../../web/pages/member.html");
/// The freshly made invite (link and QR code), shown on the invites page and
/// on a member's page.
const INVITE_RESULT: &str = include_str!("../../web/pages/invite-result.html");
/// Where the data lives, the USB disks and moving the data: the setup's
/// storage step and the storage page.
const STORAGE_PANEL: &str = include_str!("../../web/pages/storage-panel.html");
const STORAGE: &str = include_str!("../../web/pages/storage.html");
/// The chat app (`/chat`) and the page that joins from an invite link
/// (`/join`): one document of their own (the app fills the screen; no admin
/// layout), which loads `chat/main.js` or `chat/join.js`.
const APP: &str = include_str!("../../web/pages/app.html");

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Fills `{{name}}` placeholders with escaped values.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    values.iter().fold(template.to_owned(), |page, (name, value)| {
        page.replace(&format!("{{{{{name}}}}}"), &escape(value))
    })
}

/// Text a person reads, rendered in English with the key of its message
/// catalog entry (`server/web/locales/LANG.json`): the page's script puts
/// the reader's language in, and the English stays for a browser without
/// scripts. The catalog's English must equal `english` (a test checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Text {
    /// The catalog key.
    pub key: &'static str,
    /// The catalog's English text.
    pub english: &'static str,
}

/// A [`Text`].
pub const fn text(key: &'static str, english: &'static str) -> Text {
    Text { key, english }
}

impl Text {
    /// `<TAG data-i18n="KEY" ATTRS>English</TAG>`; `attrs` is raw HTML
    /// (starting with a space) or empty.
    pub fn element(&self, tag: &str, attrs: &str) -> String {
        format!("<{tag} data-i18n=\"{}\"{attrs}>{}</{tag}>", self.key, escape(self.english))
    }
}

/// The admin pages, in the order of the navigation: path, page id, label.
const ADMIN_PAGES: [(&str, &str, Text); 5] = [
    ("/admin", "status", text("nav.status", "Status")),
    ("/admin/storage", "storage", text("nav.storage", "Storage")),
    ("/admin/users", "users", text("nav.users", "Users")),
    ("/admin/invites", "invites", text("nav.invites", "Invites")),
    ("/admin/settings", "settings", text("nav.settings", "Settings")),
];

/// A page's `<title>`: its catalog entry says where the box name goes
/// (`{box}`), e.g. "Status · {box}".
const TITLE_LANDING: Text = text("title.landing", "Welcome · {box}");
const TITLE_SETUP: Text = text("title.setup", "Set up this box · {box}");
const TITLE_LOGIN: Text = text("title.login", "Log in · {box}");
const TITLE_MEMBER: Text = text("title.member", "Your account · {box}");

/// Which navigation a page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nav {
    None,
    Admin,
    Member,
}

fn layout(box_name: &str, id: &str, title: Text, nav: Nav, content: &str) -> String {
    layout_with_head(box_name, id, title, nav, content, "")
}

/// A page of `imboxd standby` ([`crate::standby`]): the same look, no
/// navigation; app.js asks `/health` every `refresh_seconds` and reloads
/// the page when the answer changes. Not a meta refresh: a timed reload
/// pulls the page from under a screen reader (WCAG 2.2.1; axe's
/// meta-refresh rule).
pub fn standby_page(box_name: &str, title: Text, content: &str, refresh_seconds: u32) -> String {
    let head = format!("<meta name=\"imbox-standby-check\" content=\"{refresh_seconds}\">\n");
    layout_with_head(box_name, "standby", title, Nav::None, content, &head)
}

const NAV_LABEL: Text = text("nav.label", "Administration");
const LOG_OUT: Text = text("nav.logout", "Log out");

fn layout_with_head(box_name: &str, id: &str, title: Text, nav: Nav, content: &str, head: &str) -> String {
    let links = match nav {
        Nav::None => String::new(),
        Nav::Admin | Nav::Member => {
            let items: String = ADMIN_PAGES
                .iter()
                .filter(|_| nav == Nav::Admin)
                .map(|(path, page, label)| {
                    let current = if *page == id { " aria-current=\"page\"" } else { "" };
                    format!("<li>{}</li>", label.element("a", &format!(" href=\"{path}\"{current}")))
                })
                .collect();
            format!(
                "<nav aria-label=\"{label}\" data-i18n-attr=\"aria-label:{label_key}\"><ul>{items}<li>{logout}</li></ul></nav>",
                label = escape(NAV_LABEL.english),
                label_key = NAV_LABEL.key,
                logout = LOG_OUT.element("button", " type=\"button\" class=\"link\" id=\"logout\""),
            )
        }
    };
    // The title's parameter: JSON in an attribute (escaped like any value).
    let params = serde_json::json!({ "box": box_name }).to_string();
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n{head}\
         <meta name=\"imbox-languages\" content=\"{languages}\">\n\
         <title data-i18n=\"{title_key}\" data-i18n-params=\"{params}\">{title}</title>\n\
         <link rel=\"stylesheet\" href=\"/assets/style.css\">\n\
         <script src=\"/assets/i18n.js\"></script>\n\
         <script src=\"/assets/app.js\" defer></script>\n</head>\n<body data-page=\"{id}\">\n\
         <a class=\"skip\" href=\"#main\" data-i18n=\"layout.skip\">Skip to content</a>\n\
         <header class=\"bar\"><span class=\"brand\">imbox <span class=\"box-name\">{name}</span></span>{links}\
         <select class=\"language\" data-language-switch data-i18n-attr=\"aria-label:language.switch\" aria-label=\"Language\"></select></header>\n\
         <main id=\"main\" tabindex=\"-1\">\n{content}\n</main>\n</body>\n</html>\n",
        title_key = title.key,
        params = escape(&params),
        title = escape(&title.english.replace("{box}", box_name)),
        name = escape(box_name),
        languages = escape(&languages()),
        content = content
            .replace("<!--invite-result-->", INVITE_RESULT)
            .replace("<!--storage-panel-->", STORAGE_PANEL),
    )
}

/// The languages of the message catalogs the box carries
/// (`server/web/locales/LANG.json`), for `<meta name="imbox-languages">`:
/// English first, then the others in order.
pub fn languages() -> String {
    let mut codes: Vec<String> = super::assets::list("locales")
        .iter()
        .filter_map(|p| p.strip_prefix("locales/")?.strip_suffix(".json").map(str::to_owned))
        .collect();
    codes.sort_by_key(|c| (c != "en", c.clone()));
    codes.join(" ")
}

/// The plain-HTTP landing page: what this box is, where its HTTPS pages
/// are, and what to compare before accepting its self-signed certificate.
pub fn landing(web: &Web, host: Option<&str>) -> Reply {
    let host = host.unwrap_or("imbox.local");
    let https = web.listeners.https.first().map(|a| https_origin(host, a.port()));
    let (link, https_text) = match &https {
        Some(origin) => (format!("{origin}/"), origin.clone()),
        None => (String::new(), String::new()),
    };
    let certificate = super::status::certificate_sha256(web).unwrap_or_default();
    // Where the claim code is, for a visitor of a new box; a claimed box (or
    // one whose database cannot say) leaves it out.
    let mut landing = LANDING.to_owned();
    if web.claimed().unwrap_or(true) {
        landing = without(&landing, "unclaimed");
    }
    landing = without(&landing, if https.is_some() { "no-https" } else { "https" });
    // What to say about the certificate: browsers trust the owner's own;
    // the box key's self-signed one is compared before it is accepted.
    landing =
        without(&landing, if web.certs.own().is_some() { "box-certificate" } else { "own-certificate" });
    let content = fill(
        &landing,
        &[
            ("https_link", &link),
            ("https_text", &https_text),
            ("certificate", &certificate),
            ("fingerprint", &web.fingerprint.to_string()),
            ("fingerprint_hex", &web.fingerprint.to_hex()),
        ],
    );
    reply::html(StatusCode::OK, layout(&web.box_name(), "landing", TITLE_LANDING, Nav::None, &content))
}

/// A page without its `<!--PART-->…<!--/PART-->` part.
fn without(page: &str, part: &str) -> String {
    let (open, close) = (format!("<!--{part}-->"), format!("<!--/{part}-->"));
    match (page.find(&open), page.find(&close)) {
        (Some(start), Some(end)) if start < end => {
            format!("{}{}", &page[..start], &page[end + close.len()..])
        }
        _ => page.to_owned(),
    }
}

/// A page that only says something: why there is nothing here, and where
/// to go instead.
struct Message {
    title: Text,
    heading: Text,
    text: Text,
    link: (&'static str, Text),
}

const CLAIMED: Message = Message {
    title: text("title.claimed", "This box has an owner · {box}"),
    heading: text("message.claimed.title", "This box has an owner"),
    text: text(
        "message.claimed.text",
        "Setup is done: the box was claimed and its claim code no longer works.",
    ),
    link: ("/login", text("message.claimed.link", "Log in")),
};

const NOT_FOUND: Message = Message {
    title: text("title.not_found", "Not found · {box}"),
    heading: text("message.not_found.title", "Not found"),
    text: text("message.not_found.text", "There is no page at this address."),
    link: ("/", text("message.not_found.link", "Go to the start page")),
};

const FORBIDDEN: Message = Message {
    title: text("title.forbidden", "For administrators only · {box}"),
    heading: text("message.forbidden.title", "For administrators only"),
    text: text("message.forbidden.text", "You are logged in, but this page is for the box's administrators."),
    link: ("/member", text("message.forbidden.link", "Go to your account")),
};

fn message(web: &Web, status: StatusCode, m: &Message) -> Reply {
    reply::html(status, message_page(&web.box_name(), m))
}

fn message_page(box_name: &str, m: &Message) -> String {
    let content = format!(
        "{}\n{}\n<p>{}</p>",
        m.heading.element("h1", ""),
        m.text.element("p", ""),
        m.link.1.element("a", &format!(" href=\"{}\"", escape(m.link.0))),
    );
    layout(box_name, "message", m.title, Nav::None, &content)
}

/// A page over HTTPS.
pub fn page(web: &Web, parts: &Parts, path: &str) -> Reply {
    if let Some(asset) = super::assets::serve(&parts.headers, path) {
        return asset;
    }
    if !matches!(parts.method, Method::GET | Method::HEAD) {
        return ApiError::MethodNotAllowed.reply();
    }
    let claimed = match web.claimed() {
        Ok(c) => c,
        Err(e) => return e.reply(),
    };
    let name = web.box_name();
    let path = path.trim_end_matches('/');
    match path {
        "" => reply::redirect(StatusCode::SEE_OTHER, if claimed { "/chat" } else { "/setup" }),
        "/chat" | "/join" => {
            // The English title is the no-script text; i18n.js sets the catalog's.
            let (page, title, script) =
                if path == "/chat" { ("chat", "Chat", "main.js") } else { ("join", "Join", "join.js") };
            let certificate = super::status::certificate_sha256(web).unwrap_or_default();
            reply::html(
                StatusCode::OK,
                fill(
                    APP,
                    &[
                        ("page", page),
                        ("title", title),
                        ("script", script),
                        ("box_name", &name),
                        ("languages", &languages()),
                        ("certificate", &certificate),
                    ],
                ),
            )
        }
        "/setup" if claimed => message(web, StatusCode::GONE, &CLAIMED),
        "/setup" => reply::html(StatusCode::OK, layout(&name, "setup", TITLE_SETUP, Nav::None, SETUP)),
        "/login" => reply::html(StatusCode::OK, layout(&name, "login", TITLE_LOGIN, Nav::None, LOGIN)),
        "/member" => match web.caller(parts) {
            Ok(_) => reply::html(StatusCode::OK, layout(&name, "member", TITLE_MEMBER, Nav::Member, MEMBER)),
            Err(_) => to_login(path),
        },
        _ => {
            let Some((id, title, content)) = admin_page(path) else {
                return message(web, StatusCode::NOT_FOUND, &NOT_FOUND);
            };
            match web.admin(parts) {
                Ok(_) => reply::html(StatusCode::OK, layout(&name, id, title, Nav::Admin, content)),
                Err(ApiError::NotAdmin) => message(web, StatusCode::FORBIDDEN, &FORBIDDEN),
                Err(_) => to_login(path),
            }
        }
    }
}

/// The admin pages: path → page id, title, content.
const ADMIN_CONTENT: [(&str, &str, Text, &str); 6] = [
    ("/admin", "status", text("title.status", "Status · {box}"), STATUS),
    ("/admin/storage", "storage", text("title.storage", "Storage · {box}"), STORAGE),
    ("/admin/users", "users", text("title.users", "Users · {box}"), USERS),
    ("/admin/invites", "invites", text("title.invites", "Invites · {box}"), INVITES),
    ("/admin/settings", "settings", text("title.settings", "Settings · {box}"), SETTINGS),
    ("/admin/welcome", "welcome", text("title.welcome", "Finish setting up · {box}"), WELCOME),
];

fn admin_page(path: &str) -> Option<(&'static str, Text, &'static str)> {
    ADMIN_CONTENT.iter().find(|(p, ..)| *p == path).map(|&(_, id, title, content)| (id, title, content))
}

fn to_login(path: &str) -> Reply {
    reply::redirect(StatusCode::SEE_OTHER, &format!("/login?next={path}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::web::routes::host_name;

    #[test]
    fn values_are_escaped_and_every_page_has_its_id() {
        assert_eq!(escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        assert_eq!(fill("<p>{{x}}</p>", &[("x", "<b>")]), "<p>&lt;b&gt;</p>");
        let page =
            layout("Kitchen <box>", "users", text("title.users", "Users · {box}"), Nav::Admin, "<p>hi</p>");
        assert!(page.contains("Kitchen &lt;box&gt;") && page.contains("data-page=\"users\""));
        assert!(page.contains("<title data-i18n=\"title.users\" data-i18n-params=\"{&quot;box&quot;:&quot;Kitchen &lt;box&gt;&quot;}\">Users · Kitchen &lt;box&gt;</title>"), "{page}");
        assert!(page.contains("href=\"/admin/users\" aria-current=\"page\""));
        assert_eq!(host_name(Some("imbox.local")).as_deref(), Some("imbox.local"));
    }

    #[test]
    fn a_claimed_box_does_not_say_where_the_claim_code_is() {
        assert!(LANDING.contains("imbox-claim.txt") && LANDING.contains("make flash"));
        let claimed = without(LANDING, "unclaimed");
        assert!(!claimed.contains("imbox-claim.txt") && !claimed.contains("claim-code-where"));
        assert!(claimed.contains("{{certificate}}"), "the rest of the page stays");
    }

    #[test]
    fn every_page_is_translatable_and_the_catalogs_agree() {
        use crate::web::translations::{assert_translatable, catalog, parameters};

        let name = "Kitchen";
        let mut used = Vec::new();
        let mut check = |what: &str, html: String| used.extend(assert_translatable(what, &html));
        for (_, id, title, content) in ADMIN_CONTENT {
            check(id, layout(name, id, title, Nav::Admin, content));
        }
        check("setup", layout(name, "setup", TITLE_SETUP, Nav::None, SETUP));
        check("login", layout(name, "login", TITLE_LOGIN, Nav::None, LOGIN));
        check("member", layout(name, "member", TITLE_MEMBER, Nav::Member, MEMBER));
        for m in [&CLAIMED, &NOT_FOUND, &FORBIDDEN] {
            check(m.heading.key, message_page(name, m));
        }
        let values = [
            ("https_link", "https://imbox.local/"),
            ("https_text", "https://imbox.local"),
            ("certificate", "AB:CD"),
            ("fingerprint", "sha256:x"),
            ("fingerprint_hex", "ab"),
        ];
        for (unclaimed, https) in [(true, true), (false, false)] {
            let mut landing = LANDING.to_owned();
            if !unclaimed {
                landing = without(&landing, "unclaimed");
            }
            landing = without(&landing, if https { "no-https" } else { "https" });
            check("landing", layout(name, "landing", TITLE_LANDING, Nav::None, &fill(&landing, &values)));
        }

        // Chinese has every key English has, with the same parameters.
        let (en, zh) = (catalog("en"), catalog("zh-CN"));
        let forms = |v: &serde_json::Value| -> Vec<String> {
            match v {
                serde_json::Value::Object(forms) => {
                    forms.values().filter_map(|f| f.as_str().map(str::to_owned)).collect()
                }
                other => vec![other.as_str().unwrap_or_default().to_owned()],
            }
        };
        for (key, value) in &en {
            let Some(chinese) = zh.get(key) else { panic!("zh-CN.json has no {key:?}") };
            let wanted = parameters(&forms(value).join(" "));
            for form in forms(chinese) {
                assert_eq!(parameters(&form), wanted, "zh-CN.json {key:?} has other parameters than en.json");
            }
        }
        for key in zh.keys() {
            assert!(en.contains_key(key), "zh-CN.json has {key:?}, en.json does not");
        }
        for key in &used {
            assert!(zh.contains_key(key), "{key:?} is used but zh-CN.json lacks it");
        }

        // The scripts ask for keys by name: t('key') (or a prefix + a code)
        // and, in the chat app's element helper, { key: 'key' }.
        let scripts = std::iter::once("app.js".to_owned())
            .chain(super::super::assets::list("chat").into_iter().filter(|p| p.ends_with(".js")));
        for path in scripts {
            let script =
                String::from_utf8_lossy(&super::super::assets::text(&path).unwrap_or_default()).into_owned();
            for pattern in ["t('", "key: '"] {
                for (at, _) in script.match_indices(pattern) {
                    // t( itself, not the end of a longer name (onSubmit, get).
                    if script[..at].ends_with(|c: char| c.is_alphanumeric() || c == '.' || c == '_') {
                        continue;
                    }
                    let Some((key, _)) = script[at + pattern.len()..].split_once('\'') else { continue };
                    let known = if key.ends_with('.') {
                        en.keys().any(|k| k.starts_with(key))
                    } else {
                        en.contains_key(key)
                    };
                    assert!(known, "{path} asks for {key:?}, which en.json lacks");
                }
            }
        }
    }
}
