//! project.xml → a small element tree (quick-xml does the parsing), bounded in depth,
//! element count and attribute count so a hostile file cannot exhaust memory.
//!
//! Elements keep their line number for messages; text content is ignored (DAWproject
//! carries everything in elements and attributes).

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};

/// Deepest nesting accepted.
pub const MAX_DEPTH: usize = 256;
/// Most elements accepted in one project.xml.
pub const MAX_ELEMENTS: usize = 2_000_000;
/// Most attributes on one element.
pub const MAX_ATTRS: usize = 256;

/// Index of an element in [`Tree::nodes`].
pub type NodeId = usize;

/// One element.
#[derive(Debug, Clone)]
pub struct Node {
    /// The local name (namespace prefixes dropped).
    pub name: String,
    /// Attributes in document order, values unescaped.
    pub attrs: Vec<(String, String)>,
    /// Child elements in document order.
    pub children: Vec<NodeId>,
    /// The parent (`None` for the root).
    pub parent: Option<NodeId>,
    /// 1-based line of the start tag.
    pub line: usize,
}

impl Node {
    /// An attribute's value.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// The whole document; `nodes[0]` is the root element.
#[derive(Debug, Clone)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    /// The root element.
    pub fn root(&self) -> NodeId {
        0
    }

    /// The element `id`.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id]
    }

    /// The children of `id`.
    pub fn children(&self, id: NodeId) -> impl Iterator<Item = NodeId> + '_ {
        self.nodes[id].children.iter().copied()
    }

    /// The first child of `id` named `name`.
    pub fn child(&self, id: NodeId, name: &str) -> Option<NodeId> {
        self.children(id).find(|&c| self.nodes[c].name == name)
    }

    /// The children of `id` named `name`.
    pub fn children_named<'a>(
        &'a self,
        id: NodeId,
        name: &'a str,
    ) -> impl Iterator<Item = NodeId> + 'a {
        self.children(id)
            .filter(move |&c| self.nodes[c].name == name)
    }
}

/// Parses `text` (project.xml). Errors are one line: `line N: what`.
pub fn parse(text: &str) -> Result<Tree, String> {
    let mut reader = quick_xml::Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut nodes: Vec<Node> = Vec::new();
    let mut stack: Vec<NodeId> = Vec::new();
    // Line counting: advance over the text as positions grow.
    let mut line = 1usize;
    let mut counted = 0usize;
    let mut line_at = |pos: usize| -> usize {
        let pos = pos.min(text.len());
        if pos > counted {
            line += text.as_bytes()[counted..pos]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            counted = pos;
        }
        line
    };
    let mut root_closed = false;
    loop {
        let start_pos = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let ev = reader.read_event().map_err(|e| {
            let pos = usize::try_from(reader.error_position()).unwrap_or(usize::MAX);
            format!("line {}: malformed XML: {e}", line_at(pos))
        })?;
        match ev {
            Event::Start(e) | Event::Empty(e) if root_closed => {
                let _ = e;
                return Err(format!(
                    "line {}: a second root element after </{}>",
                    line_at(start_pos),
                    nodes.first().map(|n| n.name.as_str()).unwrap_or("?")
                ));
            }
            Event::Start(e) => {
                let id = push(&mut nodes, &stack, &e, line_at(start_pos))?;
                stack.push(id);
                if stack.len() > MAX_DEPTH {
                    return Err(format!(
                        "line {}: elements nested deeper than {MAX_DEPTH}",
                        line_at(start_pos)
                    ));
                }
            }
            Event::Empty(e) => {
                push(&mut nodes, &stack, &e, line_at(start_pos))?;
                if stack.is_empty() {
                    root_closed = true;
                }
            }
            Event::End(_) => {
                stack.pop();
                if stack.is_empty() {
                    root_closed = true;
                }
            }
            Event::Eof => break,
            // Text, comments, the declaration, processing instructions, CDATA, DOCTYPE:
            // nothing DAWproject needs.
            _ => {}
        }
    }
    if let Some(&open) = stack.last() {
        return Err(format!(
            "line {}: the file ends inside <{}> (truncated?)",
            line_at(text.len()),
            nodes[open].name
        ));
    }
    if nodes.is_empty() {
        return Err("line 1: no root element (empty or not XML)".into());
    }
    Ok(Tree { nodes })
}

fn push(
    nodes: &mut Vec<Node>,
    stack: &[NodeId],
    e: &BytesStart<'_>,
    line: usize,
) -> Result<NodeId, String> {
    if nodes.len() >= MAX_ELEMENTS {
        return Err(format!("line {line}: more than {MAX_ELEMENTS} elements"));
    }
    let name = e.local_name().as_ref().to_string();
    let mut attrs = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|err| format!("line {line}: <{name}>: malformed attribute: {err}"))?;
        if attrs.len() >= MAX_ATTRS {
            return Err(format!(
                "line {line}: <{name}> has more than {MAX_ATTRS} attributes"
            ));
        }
        let key = a.key.local_name().as_ref().to_string();
        let value = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|err| format!("line {line}: <{name}> {key}: {err}"))?
            .into_owned();
        attrs.push((key, value));
    }
    let id = nodes.len();
    let parent = stack.last().copied();
    nodes.push(Node {
        name,
        attrs,
        children: Vec::new(),
        parent,
        line,
    });
    if let Some(p) = parent {
        nodes[p].children.push(id);
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_and_empty_elements_with_lines() {
        let t = parse(
            "<?xml version=\"1.0\"?>\n<A x=\"1&amp;2\">\n  <B/>\n  <C><D y='z'/></C>\n</A>\n",
        )
        .expect("parses");
        let root = t.root();
        assert_eq!(t.node(root).name, "A");
        assert_eq!(t.node(root).attr("x"), Some("1&2"));
        let b = t.child(root, "B").expect("B");
        assert_eq!(t.node(b).line, 3);
        let c = t.child(root, "C").expect("C");
        let d = t.child(c, "D").expect("D");
        assert_eq!(t.node(d).attr("y"), Some("z"));
        assert_eq!(t.node(d).line, 4);
    }

    #[test]
    fn truncated_and_mismatched_are_errors() {
        assert!(parse("<A><B></A>").is_err());
        let e = parse("<A>\n<B>\n").expect_err("truncated");
        assert!(e.contains("ends inside <B>"), "{e}");
        assert!(parse("").is_err());
        assert!(parse("<A/><B/>").is_err());
    }
}
