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
/// The chat app and the page that joins from an invite link: whole
/// documents of their own (the app fills the screen; no admin layout).
const CHAT: &str = include_str!("../../web/pages/chat.html");
const JOIN: &str = include_str!("../../web/pages/join.html");

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

/// The admin pages, in the order of the navigation: path, page id, title.
const ADMIN_PAGES: [(&str, &str, &str); 5] = [
    ("/admin", "status", "Status"),
    ("/admin/storage", "storage", "Storage"),
    ("/admin/users", "users", "Users"),
    ("/admin/invites", "invites", "Invites"),
    ("/admin/settings", "settings", "Settings"),
];

/// Which navigation a page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Nav {
    None,
    Admin,
    Member,
}

fn layout(box_name: &str, id: &str, title: &str, nav: Nav, content: &str) -> String {
    layout_with_head(box_name, id, title, nav, content, "")
}

/// A page of `imboxd standby` ([`crate::standby`]): the same look, no
/// navigation, and it reloads itself every `refresh_seconds` (a meta refresh:
/// the page has no script to do it, and the CSP allows none inline).
pub fn standby_page(box_name: &str, title: &str, content: &str, refresh_seconds: u32) -> String {
    let head = format!("<meta http-equiv=\"refresh\" content=\"{refresh_seconds}\">\n");
    layout_with_head(box_name, "standby", title, Nav::None, content, &head)
}

fn layout_with_head(box_name: &str, id: &str, title: &str, nav: Nav, content: &str, head: &str) -> String {
    let links = match nav {
        Nav::None => String::new(),
        Nav::Admin | Nav::Member => {
            let items: String = ADMIN_PAGES
                .iter()
                .filter(|_| nav == Nav::Admin)
                .map(|(path, page, label)| {
                    let current = if *page == id { " aria-current=\"page\"" } else { "" };
                    format!("<li><a href=\"{path}\"{current}>{label}</a></li>")
                })
                .collect();
            format!(
                "<nav aria-label=\"Administration\"><ul>{items}\
                 <li><button type=\"button\" class=\"link\" id=\"logout\">Log out</button></li></ul></nav>"
            )
        }
    };
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\n{head}\
         <meta name=\"imbox-languages\" content=\"{languages}\">\n\
         <title>{title} · {name}</title>\n<link rel=\"stylesheet\" href=\"/assets/style.css\">\n\
         <script src=\"/assets/i18n.js\"></script>\n\
         <script src=\"/assets/app.js\" defer></script>\n</head>\n<body data-page=\"{id}\">\n\
         <a class=\"skip\" href=\"#main\" data-i18n=\"layout.skip\">Skip to content</a>\n\
         <header class=\"bar\"><span class=\"brand\">imbox <span class=\"box-name\">{name}</span></span>{links}\
         <select class=\"language\" data-language-switch data-i18n-attr=\"aria-label:language.switch\" aria-label=\"Language\"></select></header>\n\
         <main id=\"main\" tabindex=\"-1\">\n{content}\n</main>\n</body>\n</html>\n",
        title = escape(title),
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
        None => (String::new(), "HTTPS is turned off on this box (https.listen = [])".to_owned()),
    };
    let certificate = super::status::certificate_sha256(web).unwrap_or_else(|| "unavailable".to_owned());
    // Where the claim code is, for a visitor of a new box; a claimed box (or
    // one whose database cannot say) leaves it out.
    let landing = if web.claimed().unwrap_or(true) { without_unclaimed(LANDING) } else { LANDING.to_owned() };
    // What to say about the certificate: browsers trust the owner's own;
    // the box key's self-signed one is compared before it is accepted.
    let other = if web.certs.own().is_some() { "box-certificate" } else { "own-certificate" };
    let landing = without_block(&landing, other);
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
    reply::html(StatusCode::OK, layout(&web.box_name(), "landing", "Welcome", Nav::None, &content))
}

/// A page without its `<!--unclaimed-->…<!--/unclaimed-->` part.
fn without_unclaimed(page: &str) -> String {
    without_block(page, "unclaimed")
}

/// A page without its `<!--NAME-->…<!--/NAME-->` part.
fn without_block(page: &str, name: &str) -> String {
    let (open, close) = (format!("<!--{name}-->"), format!("<!--/{name}-->"));
    match (page.find(&open), page.find(&close)) {
        (Some(start), Some(end)) if start < end => {
            format!("{}{}", &page[..start], &page[end + close.len()..])
        }
        _ => page.to_owned(),
    }
}

fn message(web: &Web, status: StatusCode, title: &str, text: &str, link: (&str, &str)) -> Reply {
    let content = format!(
        "<h1>{}</h1>\n<p>{}</p>\n<p><a href=\"{}\">{}</a></p>",
        escape(title),
        escape(text),
        escape(link.0),
        escape(link.1)
    );
    reply::html(status, layout(&web.box_name(), "message", title, Nav::None, &content))
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
            let page = if path == "/chat" { CHAT } else { JOIN };
            let certificate = super::status::certificate_sha256(web).unwrap_or_default();
            reply::html(
                StatusCode::OK,
                fill(
                    page,
                    &[("box_name", &name), ("languages", &languages()), ("certificate", &certificate)],
                ),
            )
        }
        "/setup" if claimed => message(
            web,
            StatusCode::GONE,
            "This box has an owner",
            "Setup is done: the box was claimed and its claim code no longer works.",
            ("/login", "Log in"),
        ),
        "/setup" => reply::html(StatusCode::OK, layout(&name, "setup", "Set up this box", Nav::None, SETUP)),
        "/login" => reply::html(StatusCode::OK, layout(&name, "login", "Log in", Nav::None, LOGIN)),
        "/member" => match web.caller(parts) {
            Ok(_) => {
                reply::html(StatusCode::OK, layout(&name, "member", "Your account", Nav::Member, MEMBER))
            }
            Err(_) => to_login(path),
        },
        _ => {
            let Some((id, title, content)) = admin_page(path) else {
                return message(
                    web,
                    StatusCode::NOT_FOUND,
                    "Not found",
                    "There is no page at this address.",
                    ("/", "Go to the start page"),
                );
            };
            match web.admin(parts) {
                Ok(_) => reply::html(StatusCode::OK, layout(&name, id, title, Nav::Admin, content)),
                Err(ApiError::NotAdmin) => message(
                    web,
                    StatusCode::FORBIDDEN,
                    "For administrators only",
                    "You are logged in, but this page is for the box's administrators.",
                    ("/member", "Go to your account"),
                ),
                Err(_) => to_login(path),
            }
        }
    }
}

fn admin_page(path: &str) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match path {
        "/admin" => ("status", "Status", STATUS),
        "/admin/storage" => ("storage", "Storage", STORAGE),
        "/admin/users" => ("users", "Users", USERS),
        "/admin/invites" => ("invites", "Invites", INVITES),
        "/admin/settings" => ("settings", "Settings", SETTINGS),
        "/admin/welcome" => ("welcome", "Finish setting up", WELCOME),
        _ => return None,
    })
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
        let page = layout("Kitchen <box>", "users", "Users", Nav::Admin, "<p>hi</p>");
        assert!(page.contains("Kitchen &lt;box&gt;") && page.contains("data-page=\"users\""));
        assert!(page.contains("href=\"/admin/users\" aria-current=\"page\""));
        assert_eq!(host_name(Some("imbox.local")).as_deref(), Some("imbox.local"));
    }

    #[test]
    fn a_claimed_box_does_not_say_where_the_claim_code_is() {
        assert!(LANDING.contains("imbox-claim.txt") && LANDING.contains("make flash"));
        let claimed = without_unclaimed(LANDING);
        assert!(!claimed.contains("imbox-claim.txt") && !claimed.contains("claim-code-where"));
        assert!(claimed.contains("{{certificate}}"), "the rest of the page stays");
    }
}
