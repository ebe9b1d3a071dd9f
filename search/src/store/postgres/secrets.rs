//! Error text of the PostgreSQL store without the password: the chain of causes, the
//! password found in a URL, and scrubbing it from messages.

/// An error with its sources (`a: b: c`), without repeating a source already in the text.
pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out = format!("{out}: {text}");
        }
        source = s.source();
    }
    out
}

/// The password of a URL (userinfo or `password=` parameter), to scrub it from messages.
pub(super) fn password_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let from_userinfo = rest[..end]
        .rsplit_once('@')
        .and_then(|(userinfo, _)| userinfo.split_once(':'))
        .map(|(_, p)| p.to_string());
    let from_query = rest.split_once('?').and_then(|(_, q)| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("password=").map(str::to_string))
    });
    from_userinfo.or(from_query).filter(|p| !p.is_empty())
}

/// `message` with every occurrence of the password (and its percent-decoded form) replaced.
pub(super) fn scrub(message: &str, password: Option<&str>) -> String {
    let Some(p) = password else {
        return message.to_string();
    };
    let mut out = message.replace(p, "***");
    let decoded = percent_decode(p);
    if !decoded.is_empty() && decoded != p {
        out = out.replace(&decoded, "***");
    }
    out
}

pub(super) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
