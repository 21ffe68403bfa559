//! What an HTML body shows a person, and what it hides from them.
//!
//! The HTML is tokenised (html5gum, WHATWG rules, entities decoded) and walked with a stack of
//! open elements, each carrying whether it is hidden and why: `display:none`,
//! `visibility:hidden`, `opacity:0`, a font too small to read, text coloured like its background,
//! positioned or indented off-screen, clipped to nothing, the `hidden` attribute, `<template>`.
//! Comments and `alt`/`title` attributes are collected as hidden too: a model reads them, a
//! reader does not see them. Text in `<script>`, `<style>` and `<head>` is dropped.
//!
//! Mis-nested markup is tolerated: an end tag closes back to its matching open element, an
//! unmatched one is ignored, so a hostile body cannot make visible text look hidden or the reverse
//! for more than its own subtree.

use html5gum::{DefaultEmitter, Token, Tokenizer};

/// One run of text a person would not see, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hidden {
    pub reason: &'static str,
    pub text: String,
}

const COMMENT: &str = "html comment";
const ALT: &str = "alt attribute";
const TITLE: &str = "title attribute";

impl Hidden {
    /// An image's `alt` or a `title`: shown when images are off or on hover, not hidden from
    /// every reader.
    pub fn shown_on_request(&self) -> bool {
        matches!(self.reason, ALT | TITLE)
    }

    pub fn is_comment(&self) -> bool {
        self.reason == COMMENT
    }
}

/// A link as the reader sees it: where it goes and the text shown for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub href: String,
    pub text: String,
}

#[derive(Debug, Default, Clone)]
pub struct Rendered {
    /// The visible text, one line per block element.
    pub visible: String,
    pub hidden: Vec<Hidden>,
    pub links: Vec<Link>,
}

/// Elements that never have an end tag: they must not be pushed on the stack.
const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];
/// Elements whose text is never rendered.
const UNRENDERED: &[&str] = &["script", "style", "head", "title", "noscript", "svg"];
/// Elements that start a new line in the rendered text.
const BLOCK: &[&str] = &[
    "p",
    "div",
    "br",
    "tr",
    "li",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "section",
    "article",
    "header",
    "footer",
    "blockquote",
    "ul",
    "ol",
    "hr",
    "center",
    "td",
    "th",
];
/// Background assumed where none is set: mail clients render on white.
const PAGE_BACKGROUND: Rgb = Rgb(255, 255, 255);

struct Open {
    name: String,
    /// Why this subtree is hidden, if it is (inherited from ancestors).
    hidden: Option<&'static str>,
    unrendered: bool,
    background: Rgb,
    color: Option<Rgb>,
    /// Index into `links` while inside an `<a href>`.
    link: Option<usize>,
}

pub fn render(html: &str) -> Rendered {
    let mut emitter = DefaultEmitter::default();
    // Raw-text elements (style, script, title) must not be tokenised as markup.
    emitter.naively_switch_states(true);
    let mut renderer = Renderer::default();
    for token in Tokenizer::new_with_emitter(html, emitter) {
        let Ok(token) = token;
        match token {
            Token::StartTag(tag) => renderer.start_tag(&tag),
            Token::EndTag(tag) => renderer.end_tag(&String::from_utf8_lossy(&tag.name)),
            Token::String(text) => renderer.text(&String::from_utf8_lossy(&text.value)),
            Token::Comment(text) => renderer.comment(&String::from_utf8_lossy(&text.value)),
            Token::Doctype(_) | Token::Error(_) => {}
        }
    }
    renderer.finish()
}

/// The rendering in progress: what is shown and hidden so far, the open elements, the
/// stylesheet read from `<style>`, and the hidden text not yet recorded.
#[derive(Default)]
struct Renderer {
    out: Rendered,
    stack: Vec<Open>,
    sheet: StyleSheet,
    hidden_run: Option<(&'static str, String)>,
}

impl Renderer {
    fn start_tag(&mut self, tag: &html5gum::StartTag<()>) {
        let name = String::from_utf8_lossy(&tag.name).to_ascii_lowercase();
        let attr = |key: &str| {
            tag.attributes
                .get(key.as_bytes())
                .map(|v| String::from_utf8_lossy(&v.value).into_owned())
        };
        for key in ["alt", "title"] {
            if let Some(text) = attr(key)
                && !text.trim().is_empty()
            {
                push_hidden(
                    &mut self.out,
                    &mut self.hidden_run,
                    attribute_reason(key),
                    &text,
                );
                flush_hidden(&mut self.out, &mut self.hidden_run);
            }
        }
        if BLOCK.contains(&name.as_str()) {
            newline(&mut self.out.visible);
        }
        if VOID.contains(&name.as_str()) || tag.self_closing {
            return;
        }
        let parent = self.stack.last();
        let (background, color, own) = self.appearance(&name, &attr, parent);
        let link = match (name.as_str(), attr("href")) {
            ("a", Some(href)) => {
                self.out.links.push(Link {
                    href: href.trim().to_owned(),
                    text: String::new(),
                });
                Some(self.out.links.len() - 1)
            }
            _ => parent.and_then(|p| p.link),
        };
        let open = Open {
            unrendered: UNRENDERED.contains(&name.as_str()) || parent.is_some_and(|p| p.unrendered),
            hidden: parent.and_then(|p| p.hidden).or(own),
            name,
            background,
            color,
            link,
        };
        self.stack.push(open);
    }

    /// An element's background and text colour, and why it hides its content if it does:
    /// stylesheet rules for its tag, classes and id first, inline declarations after them (they
    /// win, as in CSS), then the `bgcolor` and `color` attributes.
    fn appearance(
        &self,
        name: &str,
        attr: &dyn Fn(&str) -> Option<String>,
        parent: Option<&Open>,
    ) -> (Rgb, Option<Rgb>, Option<&'static str>) {
        let style = format!(
            "{};{}",
            self.sheet
                .declarations_for(name, attr("class").as_deref(), attr("id").as_deref()),
            attr("style").unwrap_or_default().to_ascii_lowercase()
        );
        let parent_background = parent.map_or(PAGE_BACKGROUND, |p| p.background);
        let parent_color = parent.and_then(|p| p.color);
        let (bgcolor, color_attr) = (attr("bgcolor"), attr("color"));
        let hidden_attr = attr("hidden").is_some();
        // Most elements style nothing: they inherit, and hide nothing of their own.
        let plain = style
            .trim_matches(|c: char| c == ';' || c.is_whitespace())
            .is_empty()
            && bgcolor.is_none()
            && color_attr.is_none()
            && name != "template"
            && !hidden_attr;
        if plain {
            return (parent_background, parent_color, None);
        }
        let background = background_of(&style, bgcolor.as_deref()).unwrap_or(parent_background);
        let color = css_value(&style, "color")
            .and_then(parse_color)
            .or_else(|| color_attr.as_deref().and_then(parse_color))
            .or(parent_color);
        let own = hiding_reason(name, &style, hidden_attr, background, color);
        (background, color, own)
    }

    fn end_tag(&mut self, name: &str) {
        let name = name.to_ascii_lowercase();
        if let Some(at) = self.stack.iter().rposition(|o| o.name == name) {
            self.stack.truncate(at);
        }
        if BLOCK.contains(&name.as_str()) {
            newline(&mut self.out.visible);
        }
    }

    fn text(&mut self, text: &str) {
        let top = self.stack.last();
        if top.is_some_and(|o| o.name == "style") {
            self.sheet.add(text);
            return;
        }
        if top.is_some_and(|o| o.unrendered) {
            return;
        }
        match top.and_then(|o| o.hidden) {
            Some(reason) => push_hidden(&mut self.out, &mut self.hidden_run, reason, text),
            None => {
                let link = top.and_then(|o| o.link);
                flush_hidden(&mut self.out, &mut self.hidden_run);
                push_visible(&mut self.out.visible, text);
                if let Some(i) = link {
                    push_visible(&mut self.out.links[i].text, text);
                }
            }
        }
    }

    fn comment(&mut self, text: &str) {
        // Conditional comments for Outlook (<!--[if mso]>) are markup, not prose.
        if !text.trim_start().starts_with('[') && !text.trim().is_empty() {
            flush_hidden(&mut self.out, &mut self.hidden_run);
            push_hidden(&mut self.out, &mut self.hidden_run, COMMENT, text);
            flush_hidden(&mut self.out, &mut self.hidden_run);
        }
    }

    fn finish(mut self) -> Rendered {
        flush_hidden(&mut self.out, &mut self.hidden_run);
        self.out.visible = self.out.visible.trim().to_owned();
        for link in &mut self.out.links {
            link.text = link.text.trim().to_owned();
        }
        self.out
    }
}

/// The simple rules of `<style>` blocks: `tag`, `.class`, `tag.class` and `#id` selectors (enough
/// for the hiding mail does: `.preheader{display:none}`). Rules inside `@media` are skipped, and a
/// class that a media query shows again is not taken as hidden: responsive mail hides its mobile
/// or desktop variant that way, and a person sees one of them.
#[derive(Default)]
struct StyleSheet {
    rules: Vec<(String, String)>,
    shown_by_media: Vec<String>,
}

impl StyleSheet {
    fn add(&mut self, css: &str) {
        let css = strip_css_comments(&css.to_ascii_lowercase());
        let mut rest = css.as_str();
        while let Some(open) = rest.find('{') {
            let selectors = rest[..open].trim();
            if selectors.starts_with('@') {
                // An at-rule block: find its matching close and look inside for re-shown classes.
                let (block, after) = balanced(&rest[open + 1..]);
                if selectors.starts_with("@media") {
                    for (sel, decls) in simple_rules(block) {
                        if css_value(&decls, "display").is_some_and(|d| !d.starts_with("none")) {
                            self.shown_by_media.push(sel);
                        }
                    }
                }
                rest = after;
                continue;
            }
            let Some(close) = rest[open..].find('}') else {
                break;
            };
            let decls = &rest[open + 1..open + close];
            for sel in selectors.split(',').map(str::trim).filter(|s| is_simple(s)) {
                self.rules.push((sel.to_owned(), decls.to_owned()));
            }
            rest = &rest[open + close + 1..];
        }
    }

    fn declarations_for(&self, tag: &str, class: Option<&str>, id: Option<&str>) -> String {
        if self.rules.is_empty() {
            return String::new();
        }
        let classes: Vec<String> = class
            .unwrap_or("")
            .to_ascii_lowercase()
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let id = id.map(|i| format!("#{}", i.to_ascii_lowercase()));
        let mut out = String::new();
        for (sel, decls) in &self.rules {
            let matches = sel == tag
                || id.as_deref() == Some(sel.as_str())
                || classes.iter().any(|c| {
                    let class_sel = format!(".{c}");
                    (*sel == class_sel || *sel == format!("{tag}{class_sel}"))
                        && !self.shown_by_media.iter().any(|m| m.ends_with(&class_sel))
                });
            if matches {
                out.push_str(decls);
                out.push(';');
            }
        }
        out
    }
}

fn is_simple(selector: &str) -> bool {
    !selector.is_empty()
        && selector
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '#' | '-' | '_'))
}

fn simple_rules(css: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = css;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let decls = &rest[open + 1..open + close];
        for sel in rest[..open]
            .split(',')
            .map(str::trim)
            .filter(|s| is_simple(s))
        {
            out.push((sel.to_owned(), decls.to_owned()));
        }
        rest = &rest[open + close + 1..];
    }
    out
}

/// The text up to the `}` that closes an already opened block, and what follows it.
fn balanced(css: &str) -> (&str, &str) {
    let mut depth = 1;
    for (i, c) in css.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return (&css[..i], &css[i + 1..]);
                }
            }
            _ => {}
        }
    }
    (css, "")
}

fn strip_css_comments(css: &str) -> String {
    let mut out = String::with_capacity(css.len());
    let mut rest = css;
    while let Some(start) = rest.find("/*") {
        out.push_str(&rest[..start]);
        rest = rest[start + 2..]
            .find("*/")
            .map_or("", |end| &rest[start + 2 + end + 2..]);
    }
    out.push_str(rest);
    out
}

fn attribute_reason(key: &str) -> &'static str {
    if key == "alt" { ALT } else { TITLE }
}

fn push_hidden(
    out: &mut Rendered,
    run: &mut Option<(&'static str, String)>,
    reason: &'static str,
    text: &str,
) {
    match run {
        Some((r, buf)) if *r == reason => push_visible(buf, text),
        _ => {
            flush_hidden(out, run);
            let mut buf = String::new();
            push_visible(&mut buf, text);
            *run = Some((reason, buf));
        }
    }
}

fn flush_hidden(out: &mut Rendered, run: &mut Option<(&'static str, String)>) {
    if let Some((reason, text)) = run.take() {
        let text = text.trim();
        if !text.is_empty() {
            out.hidden.push(Hidden {
                reason,
                text: text.to_owned(),
            });
        }
    }
}

/// Appends text with HTML whitespace collapsed.
fn push_visible(out: &mut String, text: &str) {
    for (i, word) in text.split(|c: char| c.is_whitespace()).enumerate() {
        if i > 0 && !out.ends_with([' ', '\n']) && !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
}

fn newline(out: &mut String) {
    let trimmed = out.trim_end_matches(' ').len();
    out.truncate(trimmed);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

fn hiding_reason(
    name: &str,
    style: &str,
    hidden_attribute: bool,
    background: Rgb,
    color: Option<Rgb>,
) -> Option<&'static str> {
    if name == "template" {
        return Some("template element");
    }
    if hidden_attribute {
        return Some("hidden attribute");
    }
    if css_value(style, "display").is_some_and(|v| v.starts_with("none")) {
        return Some("display:none");
    }
    if css_value(style, "visibility")
        .is_some_and(|v| v.starts_with("hidden") || v.starts_with("collapse"))
    {
        return Some("visibility:hidden");
    }
    if css_value(style, "opacity")
        .and_then(css_number)
        .is_some_and(|o| o < 0.1)
    {
        return Some("opacity:0");
    }
    if css_value(style, "font-size")
        .and_then(font_px)
        .is_some_and(|px| px < 3.0)
    {
        return Some("font too small to read");
    }
    for (property, limit) in [
        ("max-height", 1.0),
        ("height", 1.0),
        ("max-width", 1.0),
        ("width", 1.0),
    ] {
        if css_value(style, property)
            .and_then(font_px)
            .is_some_and(|px| px < limit)
            && css_value(style, "overflow").is_some_and(|v| v.starts_with("hidden"))
        {
            return Some("zero-size box");
        }
    }
    if css_value(style, "clip").is_some_and(|v| v.replace(' ', "").starts_with("rect(0"))
        || css_value(style, "clip-path")
            .is_some_and(|v| v.contains("inset(50%") || v.contains("circle(0"))
    {
        return Some("clipped to nothing");
    }
    let off_screen = |property: &str| {
        css_value(style, property)
            .and_then(font_px)
            .is_some_and(|px| px <= -500.0)
    };
    if off_screen("text-indent")
        || (css_value(style, "position")
            .is_some_and(|v| v.starts_with("absolute") || v.starts_with("fixed"))
            && ["left", "top", "right", "margin-left", "margin-top"]
                .into_iter()
                .any(off_screen))
    {
        return Some("positioned off-screen");
    }
    if let Some(color) = color
        && color.close_to(background)
    {
        return Some("text coloured like its background");
    }
    None
}

/// The value of `property` in an inline style (the last declaration wins, as in CSS).
fn css_value<'s>(style: &'s str, property: &str) -> Option<&'s str> {
    style
        .split(';')
        .filter_map(|decl| decl.split_once(':'))
        .filter(|(name, _)| name.trim() == property)
        .map(|(_, value)| value.trim())
        .next_back()
}

fn css_number(value: &str) -> Option<f32> {
    let end = value
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(value.len());
    value[..end].parse().ok()
}

/// A CSS length in pixels (0 for a bare zero); None for keywords and percentages of unknowns.
fn font_px(value: &str) -> Option<f32> {
    let n = css_number(value)?;
    let unit = value.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-');
    let unit = unit.split_whitespace().next().unwrap_or("");
    Some(match unit {
        "" | "px" => n,
        "pt" => n * 4.0 / 3.0,
        "em" | "rem" => n * 16.0,
        "%" => n * 0.16,
        "vw" | "vh" => n * 10.0,
        _ => return None,
    })
}

fn background_of(style: &str, bgcolor: Option<&str>) -> Option<Rgb> {
    css_value(style, "background-color")
        .and_then(parse_color)
        .or_else(|| {
            css_value(style, "background").and_then(|v| v.split_whitespace().find_map(parse_color))
        })
        .or_else(|| bgcolor.and_then(parse_color))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rgb(u8, u8, u8);

impl Rgb {
    fn close_to(self, other: Rgb) -> bool {
        let d = |a: u8, b: u8| a.abs_diff(b) as u32;
        d(self.0, other.0) + d(self.1, other.1) + d(self.2, other.2) <= 24
    }
}

fn parse_color(value: &str) -> Option<Rgb> {
    let v = value
        .trim()
        .trim_end_matches("!important")
        .trim()
        .to_ascii_lowercase();
    if let Some(hex) = v.strip_prefix('#') {
        let hex = hex.get(
            ..hex
                .find(|c: char| !c.is_ascii_hexdigit())
                .unwrap_or(hex.len()),
        )?;
        let byte = |s: &str| u8::from_str_radix(s, 16).ok();
        return match hex.len() {
            3 | 4 => {
                let c: Vec<u8> = hex.bytes().take(3).collect();
                let f = |b: u8| byte(&format!("{0}{0}", b as char));
                Some(Rgb(f(c[0])?, f(c[1])?, f(c[2])?))
            }
            6 | 8 => Some(Rgb(byte(&hex[0..2])?, byte(&hex[2..4])?, byte(&hex[4..6])?)),
            _ => None,
        };
    }
    if let Some(args) = v.strip_prefix("rgb(").or_else(|| v.strip_prefix("rgba(")) {
        let parts: Vec<u8> = args
            .trim_end_matches(')')
            .split([',', ' ', '/'])
            .filter(|p| !p.is_empty())
            .take(3)
            .map(|p| {
                p.trim()
                    .parse::<f32>()
                    .ok()
                    .map(|n| n.clamp(0.0, 255.0) as u8)
            })
            .collect::<Option<_>>()?;
        return (parts.len() == 3).then(|| Rgb(parts[0], parts[1], parts[2]));
    }
    Some(match v.as_str() {
        "white" => Rgb(255, 255, 255),
        "black" => Rgb(0, 0, 0),
        "red" => Rgb(255, 0, 0),
        "blue" => Rgb(0, 0, 255),
        "green" => Rgb(0, 128, 0),
        "gray" | "grey" => Rgb(128, 128, 128),
        "silver" => Rgb(192, 192, 192),
        "whitesmoke" => Rgb(245, 245, 245),
        "snow" => Rgb(255, 250, 250),
        "ivory" => Rgb(255, 255, 240),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hidden_reasons(html: &str) -> Vec<(&'static str, String)> {
        render(html)
            .hidden
            .into_iter()
            .map(|h| (h.reason, h.text))
            .collect()
    }

    #[test]
    fn visible_text_keeps_blocks_and_drops_style_and_script() {
        let r = render(
            "<html><head><title>T</title><style>p{color:red}</style></head><body>\
             <p>Hello&nbsp;there, <b>Ann</b></p><div>Second   line</div><script>var x = '<p>';</script></body></html>",
        );
        assert_eq!(r.visible, "Hello there, Ann\nSecond line");
        assert!(r.hidden.is_empty(), "{:?}", r.hidden);
    }

    #[test]
    fn every_hiding_technique_is_found_with_its_reason() {
        let cases = [
            ("<div style=\"display: none\">a b</div>", "display:none"),
            (
                "<span style='visibility:hidden'>a b</span>",
                "visibility:hidden",
            ),
            (
                "<p style=\"font-size:0px\">a b</p>",
                "font too small to read",
            ),
            (
                "<p style=\"font-size:1pt\">a b</p>",
                "font too small to read",
            ),
            (
                "<p style=\"color:#fff\">a b</p>",
                "text coloured like its background",
            ),
            (
                "<td bgcolor=\"#000000\"><font color=\"black\">a b</font></td>",
                "text coloured like its background",
            ),
            (
                "<div style=\"position:absolute;left:-9999px\">a b</div>",
                "positioned off-screen",
            ),
            (
                "<div style=\"text-indent:-10000px\">a b</div>",
                "positioned off-screen",
            ),
            ("<div style=\"opacity:0\">a b</div>", "opacity:0"),
            (
                "<div style=\"max-height:0;overflow:hidden\">a b</div>",
                "zero-size box",
            ),
            ("<template><p>a b</p></template>", "template element"),
            ("<div hidden>a b</div>", "hidden attribute"),
            ("<!-- a b -->", "html comment"),
            ("<img src=x alt=\"a b\">", "alt attribute"),
            ("<a href=x title=\"a b\">x</a>", "title attribute"),
        ];
        for (html, reason) in cases {
            assert_eq!(
                hidden_reasons(html),
                vec![(reason, "a b".to_owned())],
                "{html}"
            );
        }
    }

    #[test]
    fn stylesheet_classes_hide_but_media_query_variants_do_not() {
        let html = "<html><head><style>/* x */ .pre, .ghost { display: none } p.tiny{font-size:0}\
                    #off{position:absolute;left:-9999px} .desk{display:none}\
                    @media (max-width:600px) { .desk { display:block !important } .m{display:none} }</style></head>\
                    <body><div class=\"pre\">a b</div><p class=\"x tiny\">c d</p><span id=OFF>e f</span>\
                    <div class=\"desk\">shown on mobile</div><p class=\"m\">shown on desktop</p></body></html>";
        let r = render(html);
        let reasons: Vec<(&str, &str)> = r
            .hidden
            .iter()
            .map(|h| (h.reason, h.text.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                ("display:none", "a b"),
                ("font too small to read", "c d"),
                ("positioned off-screen", "e f")
            ]
        );
        assert!(
            r.visible.contains("shown on mobile") && r.visible.contains("shown on desktop"),
            "{}",
            r.visible
        );
    }

    #[test]
    fn ordinary_styling_is_not_hidden() {
        for html in [
            "<p style=\"color:#333;font-size:14px\">shown</p>",
            "<td style=\"background:#000\"><span style=\"color:#fff\">shown</span></td>",
            "<p style=\"font-size:10px;display:block\">shown</p>",
            "<!--[if mso]><table><![endif]--><p>shown</p>",
        ] {
            let r = render(html);
            assert!(r.hidden.is_empty(), "{html}: {:?}", r.hidden);
            assert!(r.visible.contains("shown"), "{html}");
        }
    }

    #[test]
    fn hidden_subtrees_end_where_their_element_ends_even_when_misnested() {
        let r = render("<div style=display:none><p>secret</div><p>shown</p></p>");
        assert_eq!(
            hidden_reasons("<div style=display:none><p>secret</div>")[0].1,
            "secret"
        );
        assert_eq!(r.visible, "shown");
    }

    #[test]
    fn links_carry_their_visible_text() {
        let r = render("<a href=\" https://x.test/v?t=1&amp;u=2 \">Verify <b>email</b></a>");
        assert_eq!(
            r.links,
            vec![Link {
                href: "https://x.test/v?t=1&u=2".into(),
                text: "Verify email".into()
            }]
        );
    }
}
