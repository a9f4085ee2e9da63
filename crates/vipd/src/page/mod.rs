//! The status page at `/`: what an operator looks at (HAProxy's stats page, `ipvsadm -Ln` and
//! `birdc show protocols` in one), rendered on the server from the same [`Status`] as
//! `vipd status --json`, the event history and, with `[fleet]`, the fleet view.
//!
//! Plain HTML readable without JavaScript; a few lines of script ([`JS`]) fetch the page
//! again every two seconds and swap it in, so there is one renderer and no framework, no
//! build step and no external asset (the page works on a machine with no internet).
//! Read-only: nothing on it changes state.

use std::fmt::Write as _;

use crate::events::Entry;
use crate::fleet::View;
use crate::status::{CheckHistory, Ipvs, Status};

/// The stylesheet, inlined.
pub const CSS: &str = include_str!("page.css");
/// The live refresh, inlined.
pub const JS: &str = include_str!("page.js");

/// Events shown on the page (newest first); the rest are at `/events`.
pub const EVENTS_SHOWN: usize = 50;

/// Renders the page. `now_ms`: the time (ms since the epoch) the events' ages are counted
/// from.
pub fn render(st: &Status, events: &[Entry], fleet: Option<&View>, now_ms: u64) -> String {
    let mut h = String::with_capacity(16 * 1024 + 600 * st.services.len());
    let node = st.router_id.as_deref().unwrap_or("director");
    let (serving, why) = crate::status::serving(st);
    let _ = write!(
        h,
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width,initial-scale=1\">\
         <title>{} vipd {}</title><style>{CSS}</style></head><body>\
         <main id=page data-refresh=2000 data-serving={serving}><header><h1>vipd {}</h1>\
         <span class=mute>version {} · up {}</span>{}",
        if serving { "✓" } else { "✗" },
        esc(node),
        esc(node),
        esc(&st.version),
        age(st.uptime_secs),
        node_badge(st, serving),
    );
    let _ = write!(h, "<span>{}</span>", esc(&why));
    if st.drained {
        let _ = write!(
            h,
            "<span class=mute>drain file {}</span>",
            esc(&st.drain_file)
        );
    }
    let _ = write!(
        h,
        "<span>last reload: {}</span>",
        st.last_reload.as_deref().map_or("none".into(), esc)
    );
    if let Some(e) = &st.ipvs_error {
        let _ = write!(
            h,
            "<span class=\"b failed\">IPVS unreadable: {}</span>",
            esc(e)
        );
    }
    if let Some(a) = st.ipvs_dump_age_secs {
        let _ = write!(h, "<span class=mute>kernel counters {} old</span>", age(a));
    }
    h.push_str("</header>");
    if let Some(v) = fleet {
        fleet_section(&mut h, v);
    }
    let _ = write!(
        h,
        "<section id=services><h2>Services ({})</h2>",
        st.services.len()
    );
    for s in &st.services {
        service(&mut h, s);
    }
    h.push_str("</section>");
    neighbors(&mut h, st);
    events_section(&mut h, events, now_ms);
    let _ = write!(
        h,
        "<footer>Rendered by vipd at {} UTC · <span id=live class=b>static</span> · \
         <a href=/status>status JSON</a> · <a href=/events>events JSON</a> · \
         <a href=/metrics>metrics</a> · <a href=/healthcheck>healthcheck</a></footer>\
         </main><script>{JS}</script></body></html>",
        clock(now_ms)
    );
    h
}

/// A backend's page: its set-up as last observed, the agent's answer, the local checks.
pub fn render_backend(st: &Status) -> String {
    let (serving, why) = crate::status::serving(st);
    let mut h = format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>{} vipd backend</title>\
         <style>{CSS}</style></head><body><main id=page data-refresh=2000 \
         data-serving={serving}><header><h1>vipd backend</h1><span class=mute>version {} · \
         up {}</span>{}<span>{}</span><span>last reload: {}</span></header>",
        if serving { "✓" } else { "✗" },
        esc(&st.version),
        age(st.uptime_secs),
        node_badge(st, serving),
        esc(&why),
        st.last_reload.as_deref().map_or("none".into(), esc),
    );
    if let Some(b) = &st.backend {
        h.push_str("<section id=backend><h2>Set-up</h2><ul class=problems>");
        for p in &b.problems {
            let _ = write!(h, "<li class=warn>{}</li>", esc(p));
        }
        h.push_str("</ul><pre>");
        h.push_str(&esc(&crate::status::backend::render_text(b)));
        h.push_str("</pre></section>");
    }
    let _ = write!(
        h,
        "<footer><span id=live class=b>static</span> · <a href=/status>status JSON</a> · \
         <a href=/metrics>metrics</a> · <a href=/healthcheck>healthcheck</a></footer></main>\
         <script>{JS}</script></body></html>"
    );
    h
}

fn service(h: &mut String, s: &crate::status::ServiceStatus) {
    let route = crate::fleet::route_word(s.announce);
    let _ = write!(
        h,
        "<article class=svc data-service=\"{}\" data-route={route}><h3>{} <code>{}</code> {}",
        esc(&s.name),
        esc(&s.name),
        esc(&s.key),
        badge(route, "route"),
    );
    if s.panic {
        h.push_str(" <span class=\"b panic\">panic</span>");
    }
    let ipvs = match s.ipvs {
        Ipvs::Programmed => "programmed",
        Ipvs::Pending => "pending",
        Ipvs::Failed => "failed",
    };
    let _ = write!(
        h,
        "</h3><p><span class=reason>{}</span> · healthy weight <b>{}</b> / quorum {} · \
         scheduler <code>{}</code> · IPVS {}{} · table <code class=digest>{}</code></p>",
        esc(&s.announce_reason),
        s.healthy_weight,
        s.quorum,
        esc(&s.scheduler),
        badge(ipvs, "ipvs"),
        s.ipvs_error
            .as_deref()
            .map_or(String::new(), |e| format!(" {}", esc(e))),
        s.digest.as_deref().map_or("none".into(), esc),
    );
    h.push_str(
        "<table class=rs><thead><tr><th>real server<th>health<th>reason<th>weight\
         <th>kernel<th>active<th>inactive<th>last checks (latency; red: failed)</tr></thead><tbody>",
    );
    for r in &s.real_servers {
        let health = r.health.word();
        let _ = write!(
            h,
            "<tr class={health} data-server=\"{}\" data-health={health}><td><code>{}</code>\
             <td>{}<td>{}<td class=n>{}<td class=n>{}<td class=n>{}<td class=n>{}<td>",
            esc(&r.address),
            esc(&r.address),
            badge(health, "health"),
            esc(&r.reason),
            r.weight,
            r.ipvs_weight.map_or("-".into(), |w| w.to_string()),
            r.active_conns,
            r.inact_conns,
        );
        for c in &r.checks {
            spark(h, c);
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table></article>");
}

/// One check's last results as bars: height by latency (log scale, 0.1 ms to 10 s), green
/// passed, red failed; the title lists them.
fn spark(h: &mut String, c: &CheckHistory) {
    const W: usize = 5;
    let (mut ok, mut ko, mut title) = (String::new(), String::new(), String::new());
    for (i, r) in c.results.iter().enumerate() {
        let frac = ((r.ms.max(0.1) * 10.0).log10() / 5.0).clamp(0.1, 1.0);
        let len = (frac * 16.0).round();
        let x = i * W + 2;
        let path = if r.ok { &mut ok } else { &mut ko };
        let _ = write!(path, "M{x} 18V{}", 18.0 - len);
        let _ = writeln!(
            title,
            "{} {} ms: {}",
            if r.ok { "ok" } else { "FAIL" },
            r.ms,
            r.reason
        );
    }
    let width = c.results.len().max(1) * W + 2;
    let _ = write!(
        h,
        "<span class=chk data-check=\"{}\" data-health={}>{} <svg class=spark width={width} \
         height=18 stroke-width=3><title>{}</title><path class=ok d=\"{ok}\"/>\
         <path class=ko d=\"{ko}\"/></svg></span> ",
        esc(&c.name),
        c.health.word(),
        esc(&c.name),
        esc(&title),
    );
}

fn neighbors(h: &mut String, st: &Status) {
    let _ = write!(
        h,
        "<section id=neighbors><h2>BGP neighbors ({})</h2><table><thead><tr><th>neighbor\
         <th>description<th>state<th>established<th>prefixes<th>updates<th>BFD<th>last error\
         </tr></thead><tbody>",
        st.neighbors.len()
    );
    for n in &st.neighbors {
        let bfd = n.bfd.as_ref().map_or("-".to_string(), |b| {
            format!(
                "{} <small>detect {} ms, {} ups / {} downs{}</small>",
                badge(&b.state, "bfd"),
                b.detection_ms,
                b.ups,
                b.downs,
                if b.diag == "none" {
                    String::new()
                } else {
                    format!(", {}", esc(&b.diag))
                }
            )
        });
        let _ = write!(
            h,
            "<tr data-neighbor=\"{}\" data-state=\"{}\"><td><code>{}</code><td>{}<td>{}\
             <td>{}<td class=n>{}<td class=n>{}<td>{bfd}<td>{}</tr>",
            esc(&n.address),
            esc(&n.state),
            esc(&n.address),
            n.description.as_deref().map_or(String::new(), esc),
            badge(&n.state, "bgp"),
            n.established_secs.map_or("-".into(), age),
            n.prefixes_sent,
            n.updates_sent,
            n.last_error.as_deref().map_or(String::new(), esc),
        );
    }
    h.push_str("</tbody></table></section>");
}

fn events_section(h: &mut String, events: &[Entry], now_ms: u64) {
    let _ = write!(
        h,
        "<section id=events><h2>Events <small>(newest first; the last {EVENTS_SHOWN}, \
         all at <a href=/events>/events</a>)</small></h2><table><thead><tr><th>#<th>time (UTC)\
         <th>kind<th>what</tr></thead><tbody>"
    );
    for e in events.iter().rev().take(EVENTS_SHOWN) {
        let kind = serde_json::to_value(e.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let _ = write!(
            h,
            "<tr{} data-seq={}><td class=n>{}<td>{} <small>({} ago)</small><td>{}<td>{}</tr>",
            if e.warning { " class=warn" } else { "" },
            e.seq,
            e.seq,
            clock(e.at_ms),
            age(now_ms.saturating_sub(e.at_ms) / 1000),
            esc(&kind),
            esc(&e.text),
        );
    }
    h.push_str("</tbody></table></section>");
}

fn fleet_section(h: &mut String, v: &View) {
    let verdict = if !v.problems.is_empty() {
        "disagree"
    } else if v.pending {
        "pending"
    } else {
        "agree"
    };
    let when = match (v.pending, v.fetched_secs_ago) {
        (true, _) => " <small>(the other directors are not fetched yet)</small>".to_string(),
        (false, Some(s)) => format!(" <small>(fetched {} ago)</small>", age(s)),
        (false, None) => String::new(),
    };
    let _ = write!(
        h,
        "<section id=fleet data-verdict={verdict}><h2>Fleet {}{when}</h2><table><thead><tr>\
         <th>service",
        badge(verdict, "fleet")
    );
    for (d, dr) in v.directors.iter().zip(&v.drained) {
        let note = match dr {
            Some(true) => " <span class=\"b drained\">drained</span>",
            Some(false) => "",
            None => " <span class=\"b unreachable\">unreachable</span>",
        };
        let _ = write!(h, "<th>{}{note}", esc(d));
    }
    h.push_str("<th></tr></thead><tbody>");
    for r in &v.rows {
        let _ = write!(
            h,
            "<tr{} data-service=\"{}\"><td>{}",
            if r.agree { "" } else { " class=down" },
            esc(&r.service),
            esc(&r.service)
        );
        for c in &r.cells {
            match c {
                None => h.push_str("<td>-"),
                Some(c) => {
                    let _ = write!(
                        h,
                        "<td>{} {}/{} <code>{}</code>",
                        badge(crate::fleet::route_word(c.announce), "route"),
                        c.healthy_weight,
                        c.quorum,
                        c.digest.as_deref().map_or("none".into(), esc)
                    );
                }
            }
        }
        let _ = write!(
            h,
            "<td>{}</tr>",
            badge(if r.agree { "agree" } else { "disagree" }, "row")
        );
    }
    h.push_str("</tbody></table>");
    if !v.problems.is_empty() {
        h.push_str("<ul class=problems>");
        for p in &v.problems {
            let _ = write!(h, "<li>{}</li>", esc(&p.to_string()));
        }
        h.push_str("</ul>");
    }
    h.push_str("</section>");
}

/// The node's state: drained, serving or down.
fn node_badge(st: &Status, serving: bool) -> String {
    let word = if st.drained {
        "drained"
    } else if serving {
        "serving"
    } else {
        "down"
    };
    badge(word, "node")
}

/// A coloured label; its class is the word itself (the stylesheet colours known words).
fn badge(word: &str, what: &str) -> String {
    let w = esc(word);
    format!("<span class=\"b {w}\" data-{what}=\"{w}\">{w}</span>")
}

/// HTML-escapes text for element content and quoted attributes.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

/// `1d 2h`, `3h 4m`, `5m 6s`, `7s`.
fn age(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// `2026-12-01 21:30:05` from milliseconds since the epoch (UTC; civil-from-days).
fn clock(ms: u64) -> String {
    let secs = ms / 1000;
    let days = i64::try_from(secs / 86400).unwrap_or(0);
    let t = secs % 86400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        t / 3600,
        t / 60 % 60,
        t % 60
    )
}

pub mod serve;
#[cfg(test)]
mod tests;
