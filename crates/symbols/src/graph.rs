//! C type graphs (from BTF or DWARF) turned into the format-neutral model.
//!
//! BTF and DWARF describe the same C types in two encodings. Both readers
//! first build a [`Graph`] (nodes that point at each other by index, as
//! the source does), and this one converter turns a graph into
//! [`Model`] user types, enums and base types. Every convention that makes
//! lookups read like C lives here, so that the two sources cannot answer
//! differently:
//!
//! * struct, union and enum names are the bare C tag (`task_struct`);
//! * typedefs are looked through; an anonymous struct, union or enum named
//!   only by a typedef takes the name of the typedef nearest to it
//!   (`atomic64_t`), and a typedef of a named struct becomes an alias (a
//!   copy under the typedef's name) when no struct has that name;
//! * anonymous struct and union members are hoisted into the named parent,
//!   recursively, offsets added, as C expressions see them
//!   (`task_struct.__state`);
//! * a named member whose type is anonymous gets the synthetic name
//!   `Parent::member` (`Parent` is the named type that ends up holding the
//!   field, so hoisting does not show in it);
//! * a bitfield's `Field::offset` is the byte offset of its storage unit,
//!   the unit being its declared type's size, aligned to that size; a
//!   bitfield that straddles such a unit (packed structures) is placed at
//!   the byte holding its first bit instead;
//! * the first complete definition of a name wins (source order: BTF type
//!   id, DWARF DIE offset); declarations never shadow a definition;
//! * flexible arrays have count 0; pointers are 8 bytes;
//! * the constants of every anonymous enum form one enumeration named
//!   [`ANONYMOUS_ENUM`] (C puts all enumerators in one namespace).

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::model::Model;
use crate::{Enumeration, Field, TypeRef, UserType, ANONYMOUS_ENUM};

/// Index of a node in a [`Graph`].
pub(crate) type NodeId = u32;

/// Longest typedef/qualifier/pointer chain followed before giving up:
/// real chains are a handful long, so anything longer is a cycle in a
/// damaged input.
const MAX_CHAIN: u32 = 256;
/// Deepest `TypeRef` nesting produced (the compact writer accepts 64).
const MAX_NESTING: u32 = 48;
/// Deepest nesting of anonymous members hoisted into one parent.
const MAX_HOIST_DEPTH: u32 = 32;
/// Longest synthetic name (`a::b::c`) built before refusing to go on.
const MAX_SYNTHETIC_NAME: usize = 1024;

/// One C type as the source describes it.
#[derive(Debug, Clone)]
pub(crate) enum Node<'a> {
    /// `void` (BTF type id 0, a DWARF pointer without a type).
    Void,
    /// An integer, boolean, character or floating-point type.
    Base { name: &'a str, size: u64 },
    /// A pointer to the node.
    Pointer(NodeId),
    /// An array; count 0 for a flexible array.
    Array { element: NodeId, count: u64 },
    /// A struct or union; `complete` is false for a forward declaration.
    Aggregate {
        name: Option<&'a str>,
        is_union: bool,
        size: u64,
        members: Vec<Member<'a>>,
        complete: bool,
    },
    /// An enumeration; `complete` is false for a forward declaration.
    Enum {
        name: Option<&'a str>,
        size: u64,
        constants: Vec<(&'a str, i64)>,
        complete: bool,
    },
    /// A typedef of the node.
    Typedef { name: &'a str, target: NodeId },
    /// `const`, `volatile`, `restrict`, `_Atomic` or a type tag: the same
    /// layout as the node.
    Qualified(NodeId),
    /// A function type (pointers to functions point at this).
    Function,
    /// Something no field can have as its type (a BTF variable, data
    /// section, function, declaration tag; a DWARF entry this reader does
    /// not keep).
    Other,
}

/// A struct or union member.
#[derive(Debug, Clone)]
pub(crate) struct Member<'a> {
    /// None for an anonymous member.
    pub name: Option<&'a str>,
    /// Bit offset of the member's first bit from the start of the parent.
    pub bit_offset: u64,
    /// Bitfield width; 0 when the member is not a bitfield.
    pub bit_size: u32,
    pub ty: NodeId,
}

/// A type graph: nodes indexed by [`NodeId`].
#[derive(Debug, Default)]
pub(crate) struct Graph<'a> {
    pub nodes: Vec<Node<'a>>,
}

impl<'a> Graph<'a> {
    fn get(&self, id: NodeId) -> Result<&Node<'a>, String> {
        self.nodes
            .get(id as usize)
            .ok_or_else(|| format!("type id {id} does not exist"))
    }

    /// Follow typedefs and qualifiers to the node that has a layout.
    fn strip(&self, mut id: NodeId) -> Result<NodeId, String> {
        for _ in 0..MAX_CHAIN {
            match self.get(id)? {
                Node::Typedef { target, .. } | Node::Qualified(target) => id = *target,
                _ => return Ok(id),
            }
        }
        Err(format!("typedef chain through type id {id} does not end"))
    }

    /// Size in bytes of a type, following typedefs and qualifiers.
    pub(crate) fn size_of(&self, id: NodeId) -> Result<u64, String> {
        let id = self.strip(id)?;
        Ok(match self.get(id)? {
            Node::Base { size, .. } | Node::Aggregate { size, .. } | Node::Enum { size, .. } => {
                *size
            }
            Node::Pointer(_) => 8,
            Node::Array { element, count } => {
                // One level at a time; a cyclic array chain fails in strip
                // or here through the bounded recursion of nested arrays.
                let mut el = *element;
                let mut total = *count;
                for _ in 0..MAX_CHAIN {
                    let s = self.strip(el)?;
                    match self.get(s)? {
                        Node::Array { element, count } => {
                            total = total.saturating_mul(*count);
                            el = *element;
                        }
                        _ => return Ok(total.saturating_mul(self.size_of_leaf(s)?)),
                    }
                }
                return Err(format!("array chain through type id {id} does not end"));
            }
            _ => 0,
        })
    }

    fn size_of_leaf(&self, id: NodeId) -> Result<u64, String> {
        Ok(match self.get(id)? {
            Node::Base { size, .. } | Node::Aggregate { size, .. } | Node::Enum { size, .. } => {
                *size
            }
            Node::Pointer(_) => 8,
            _ => 0,
        })
    }
}

/// Where a bitfield goes in the model: (storage unit byte offset, bit
/// position inside it). `unit_bytes` is the declared type's size.
pub(crate) fn bitfield_place(abs_bit: u64, length: u32, unit_bytes: u64) -> (u64, u32) {
    if matches!(unit_bytes, 1 | 2 | 4 | 8) {
        let unit_bits = unit_bytes * 8;
        let unit = abs_bit / unit_bits;
        let position = abs_bit - unit * unit_bits;
        if position + u64::from(length) <= unit_bits {
            return (unit * unit_bytes, position as u32);
        }
    }
    (abs_bit / 8, (abs_bit % 8) as u32)
}

/// The model being built from one or more graphs (DWARF has one per
/// compilation unit; the first definition of a name wins across all).
#[derive(Debug, Default)]
pub(crate) struct ModelBuilder {
    /// Definitions; a slot is emptied when a larger definition of the
    /// same name replaces it.
    user_types: Vec<Option<UserType>>,
    /// Name -> slot in `user_types` (claimed before the slot is filled).
    user_type_index: HashMap<String, usize>,
    enums: Vec<Enumeration>,
    enum_names: HashSet<String>,
    base_types: BTreeMap<String, u64>,
    /// Typedef name -> the struct/union name it stands for (first wins).
    struct_aliases: HashMap<String, String>,
    /// Typedef name -> the enum name it stands for (first wins).
    enum_aliases: HashMap<String, String>,
    /// Types left out because they could not be converted (a cycle, a
    /// reference to a non-type in damaged input): count and first reasons.
    skipped: usize,
    notes: Vec<String>,
    /// Constants of every anonymous enum (C puts enumerators in one
    /// namespace) by name, and their largest size. A name seen with two
    /// values (two files' enums) is ambiguous and left out.
    anonymous_constants: HashMap<String, Option<i64>>,
    anonymous_size: u64,
}

/// How many reasons for skipped types are kept.
const MAX_NOTES: usize = 8;

impl ModelBuilder {
    /// Whether a struct or union of this name is defined already (a
    /// reader uses this to skip converting repeated definitions).
    pub(crate) fn has_user_type(&self, name: &str) -> bool {
        self.user_type_index.contains_key(name)
    }

    /// Size of the struct or union defined under this name, if any.
    pub(crate) fn user_type_size(&self, name: &str) -> Option<u64> {
        let slot = *self.user_type_index.get(name)?;
        self.user_types.get(slot)?.as_ref().map(|u| u.size)
    }

    /// Forget a definition and the synthetic `name::member` types it made,
    /// so that another definition of the name can take its place.
    fn forget_user_type(&mut self, name: &str) {
        let prefix = format!("{name}::");
        let gone: Vec<String> = self
            .user_type_index
            .keys()
            .filter(|k| *k == name || k.starts_with(&prefix))
            .cloned()
            .collect();
        for k in gone {
            if let Some(slot) = self.user_type_index.remove(&k) {
                if let Some(s) = self.user_types.get_mut(slot) {
                    *s = None;
                }
            }
        }
        self.enum_names.retain(|e| !e.starts_with(&prefix));
        self.enums.retain(|e| !e.name.starts_with(&prefix));
    }

    /// Whether an enum of this name is defined already.
    pub(crate) fn has_enum(&self, name: &str) -> bool {
        self.enum_names.contains(name)
    }

    /// Convert every named type of `graph` whose id is in `range`, in id
    /// order.
    #[cfg(test)]
    pub(crate) fn add_graph(
        &mut self,
        graph: &Graph<'_>,
        range: std::ops::Range<NodeId>,
    ) -> Result<(), String> {
        for id in range {
            self.add_node(graph, id)?;
        }
        Ok(())
    }

    /// [`ModelBuilder::add_node`], but a type that cannot be converted is
    /// left out and noted (`place` says where it was), so that one damaged
    /// type does not cost every other.
    pub(crate) fn add_node_or_note(
        &mut self,
        graph: &Graph<'_>,
        id: NodeId,
        place: impl FnOnce() -> String,
    ) {
        if let Err(m) = self.add_node(graph, id) {
            self.skipped += 1;
            if self.notes.len() < MAX_NOTES {
                self.notes.push(format!("{}: {m}", place()));
            }
        }
    }

    /// Convert one node if it is a named type (the top-level pass).
    pub(crate) fn add_node(&mut self, graph: &Graph<'_>, id: NodeId) -> Result<(), String> {
        let mut conv = Converter {
            g: graph,
            out: self,
        };
        match graph.get(id)? {
            Node::Base { name, size } => conv.base(name, *size),
            Node::Aggregate {
                name: Some(name),
                complete: true,
                size,
                ..
            } => match conv.out.user_type_size(name) {
                None if !conv.out.has_user_type(name) => conv.define_aggregate(id, name, 0)?,
                // Two different definitions of one tag (in different
                // files): the larger wins, then the first, so that BTF
                // (deduplicated, in its own order) and DWARF (in unit
                // order) pick the same one.
                Some(old) if *size > old => {
                    conv.out.forget_user_type(name);
                    conv.define_aggregate(id, name, 0)?;
                }
                _ => {}
            },
            Node::Enum {
                name: Some(name),
                complete: true,
                ..
            } if !conv.out.has_enum(name) => conv.define_enum(id, name)?,
            Node::Enum {
                name: None,
                complete: true,
                size,
                constants,
            } => {
                let out = &mut conv.out;
                out.anonymous_size = out.anonymous_size.max(*size);
                for (n, v) in constants {
                    match out.anonymous_constants.get_mut(*n) {
                        None => {
                            out.anonymous_constants.insert(n.to_string(), Some(*v));
                        }
                        Some(seen) if *seen != Some(*v) => *seen = None,
                        Some(_) => {}
                    }
                }
            }
            Node::Typedef { name, target } => conv.typedef(name, *target)?,
            _ => {}
        }
        Ok(())
    }

    /// The finished model: aliases become copies of what they name when
    /// no type has the alias's own name.
    pub(crate) fn finish(mut self) -> Model {
        let mut user_types: Vec<UserType> = self.user_types.into_iter().flatten().collect();
        let extra = alias_copies(
            &user_types,
            self.struct_aliases,
            |alias| self.user_type_index.contains_key(alias),
            |u| &u.name,
            |u, name| u.name = name,
        );
        user_types.extend(extra);
        let extra = alias_copies(
            &self.enums,
            self.enum_aliases,
            |alias| self.enum_names.contains(alias),
            |e| &e.name,
            |e, name| e.name = name,
        );
        self.enums.extend(extra);
        if !self.anonymous_constants.is_empty() && !self.enum_names.contains(ANONYMOUS_ENUM) {
            let mut constants: Vec<(String, i64)> = std::mem::take(&mut self.anonymous_constants)
                .into_iter()
                .filter_map(|(n, v)| Some((n, v?)))
                .collect();
            constants.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
            self.enums.push(Enumeration {
                name: ANONYMOUS_ENUM.to_string(),
                size: self.anonymous_size,
                constants,
            });
        }
        let mut notes = Vec::new();
        if self.skipped > 0 {
            notes.push(format!(
                "{} type(s) left out because they could not be read",
                self.skipped
            ));
            notes.append(&mut self.notes);
        }
        Model {
            notes,
            base_types: self.base_types.into_iter().collect(),
            user_types,
            enums: self.enums,
            ..Model::default()
        }
    }
}

struct Converter<'g, 'a, 'm> {
    g: &'g Graph<'a>,
    out: &'m mut ModelBuilder,
}

impl Converter<'_, '_, '_> {
    fn base(&mut self, name: &str, size: u64) {
        if !self.out.base_types.contains_key(name) {
            self.out.base_types.insert(name.to_string(), size);
        }
    }

    /// A typedef at the top level: define the anonymous type it names, or
    /// remember it as an alias of the named one.
    fn typedef(&mut self, name: &str, target: NodeId) -> Result<(), String> {
        // The nearest typedef to an anonymous type names it; walk the
        // chain to find which typedef that is.
        let mut nearest = name;
        let mut id = target;
        for _ in 0..MAX_CHAIN {
            match self.g.get(id)? {
                Node::Typedef { name, target } => {
                    nearest = name;
                    id = *target;
                }
                Node::Qualified(t) => id = *t,
                Node::Aggregate {
                    name: tag,
                    complete,
                    ..
                } => {
                    let tag = match tag {
                        Some(t) => *t,
                        None => {
                            if *complete && !self.out.has_user_type(nearest) {
                                self.define_aggregate(id, nearest, 0)?;
                            }
                            nearest
                        }
                    };
                    if tag != name {
                        self.out
                            .struct_aliases
                            .entry(name.to_string())
                            .or_insert_with(|| tag.to_string());
                    }
                    return Ok(());
                }
                Node::Enum {
                    name: tag,
                    complete,
                    ..
                } => {
                    let tag = match tag {
                        Some(t) => *t,
                        None => {
                            if *complete && !self.out.has_enum(nearest) {
                                self.define_enum(id, nearest)?;
                            }
                            nearest
                        }
                    };
                    if tag != name {
                        self.out
                            .enum_aliases
                            .entry(name.to_string())
                            .or_insert_with(|| tag.to_string());
                    }
                    return Ok(());
                }
                _ => return Ok(()),
            }
        }
        Err(format!("typedef `{name}` chain does not end"))
    }

    /// The `TypeRef` a field of type `id` has; `ctx` names an anonymous
    /// struct, union or enum met on the way (no typedef in between).
    fn type_ref(&mut self, id: NodeId, ctx: &str, nesting: u32) -> Result<TypeRef, String> {
        let mut id = id;
        let mut ctx: &str = ctx;
        let g = self.g;
        for _ in 0..MAX_CHAIN {
            if nesting > MAX_NESTING {
                return Err(format!("type id {id} is nested too deeply (a cycle?)"));
            }
            match g.get(id)? {
                Node::Void => {
                    self.base("void", 0);
                    return Ok(TypeRef::Base("void".into()));
                }
                Node::Base { name, size } => {
                    self.base(name, *size);
                    return Ok(TypeRef::Base(name.to_string()));
                }
                Node::Pointer(t) => {
                    return Ok(TypeRef::Pointer(Box::new(self.type_ref(
                        *t,
                        ctx,
                        nesting + 1,
                    )?)))
                }
                Node::Array { element, count } => {
                    // `int a[2][3]` is `int a[6]`: the kernel's BTF (pahole)
                    // writes multi-dimensional arrays flattened, so every
                    // source does. An array of a typedef'd array stays
                    // nested, as it does there.
                    let (mut element, mut count) = (*element, *count);
                    for _ in 0..MAX_CHAIN {
                        match g.get(element)? {
                            Node::Array {
                                element: inner,
                                count: n,
                            } => {
                                count = count.saturating_mul(*n);
                                element = *inner;
                            }
                            _ => break,
                        }
                    }
                    return Ok(TypeRef::Array {
                        count,
                        element: Box::new(self.type_ref(element, ctx, nesting + 1)?),
                    });
                }
                Node::Typedef { name, target } => {
                    ctx = name;
                    id = *target;
                }
                Node::Qualified(t) => id = *t,
                Node::Aggregate { name: Some(n), .. } => return Ok(TypeRef::Struct(n.to_string())),
                Node::Aggregate {
                    name: None,
                    complete,
                    ..
                } => {
                    if *complete && !self.out.has_user_type(ctx) {
                        self.define_aggregate(id, ctx, nesting + 1)?;
                    }
                    return Ok(TypeRef::Struct(ctx.to_string()));
                }
                Node::Enum { name: Some(n), .. } => return Ok(TypeRef::Enum(n.to_string())),
                Node::Enum {
                    name: None,
                    complete,
                    ..
                } => {
                    if *complete && !self.out.has_enum(ctx) {
                        self.define_enum(id, ctx)?;
                    }
                    return Ok(TypeRef::Enum(ctx.to_string()));
                }
                Node::Function => return Ok(TypeRef::Function),
                Node::Other => {
                    return Err(format!(
                        "type id {id} is used as a field's type but is not a data type"
                    ))
                }
            }
        }
        Err(format!("type chain through type id {id} does not end"))
    }

    fn define_enum(&mut self, id: NodeId, name: &str) -> Result<(), String> {
        let Node::Enum {
            size, constants, ..
        } = self.g.get(id)?
        else {
            return Err(format!("type id {id} is not an enum"));
        };
        let mut constants: Vec<(String, i64)> =
            constants.iter().map(|(n, v)| (n.to_string(), *v)).collect();
        constants.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        self.out.enum_names.insert(name.to_string());
        self.out.enums.push(Enumeration {
            name: name.to_string(),
            size: *size,
            constants,
        });
        Ok(())
    }

    fn define_aggregate(&mut self, id: NodeId, name: &str, nesting: u32) -> Result<(), String> {
        if name.len() > MAX_SYNTHETIC_NAME {
            return Err(format!(
                "type id {id}: anonymous types nested too deeply (name `{}...`)",
                name.chars().take(64).collect::<String>()
            ));
        }
        let Node::Aggregate { is_union, size, .. } = self.g.get(id)? else {
            return Err(format!("type id {id} is not a struct or union"));
        };
        let (is_union, size) = (*is_union, *size);
        // Claimed before the members are converted: an anonymous type that
        // (in a damaged input) contains itself then ends here.
        let slot = self.out.user_types.len();
        self.out.user_types.push(None);
        self.out.user_type_index.insert(name.to_string(), slot);
        let mut fields = Vec::new();
        self.hoist(id, 0, name, nesting, 0, &mut fields)?;
        fields.sort_by(|a, b| {
            a.offset
                .cmp(&b.offset)
                .then_with(|| bit_position(&a.ty).cmp(&bit_position(&b.ty)))
                .then_with(|| a.name.cmp(&b.name))
        });
        self.out.user_types[slot] = Some(UserType {
            name: name.to_string(),
            is_union,
            size,
            fields,
        });
        Ok(())
    }

    /// Append the fields of aggregate `id`, placed at `base_bit` inside
    /// the type named `parent`, descending into anonymous members.
    fn hoist(
        &mut self,
        id: NodeId,
        base_bit: u64,
        parent: &str,
        nesting: u32,
        depth: u32,
        fields: &mut Vec<Field>,
    ) -> Result<(), String> {
        if depth > MAX_HOIST_DEPTH {
            return Err(format!(
                "anonymous members of `{parent}` nested too deeply at type id {id}"
            ));
        }
        let g = self.g;
        let Node::Aggregate { members, .. } = g.get(id)? else {
            return Err(format!("type id {id} is not a struct or union"));
        };
        for m in members {
            let bit = base_bit
                .checked_add(m.bit_offset)
                .ok_or_else(|| format!("member offset overflows in `{parent}`"))?;
            let Some(mname) = m.name.filter(|n| !n.is_empty()) else {
                let target = g.strip(m.ty)?;
                if let Node::Aggregate { .. } = g.get(target)? {
                    self.hoist(target, bit, parent, nesting, depth + 1, fields)?;
                }
                // An unnamed non-aggregate member is padding (`int :3;`).
                continue;
            };
            let ctx = format!("{parent}::{mname}");
            let ty = self.type_ref(m.ty, &ctx, nesting + 1)?;
            let field = if m.bit_size > 0 {
                let unit = g.size_of(m.ty)?;
                let (offset, position) = bitfield_place(bit, m.bit_size, unit);
                Field {
                    name: mname.to_string(),
                    offset,
                    ty: TypeRef::Bitfield {
                        position,
                        length: m.bit_size,
                        base: Box::new(ty),
                    },
                }
            } else {
                Field {
                    name: mname.to_string(),
                    offset: bit / 8,
                    ty,
                }
            };
            fields.push(field);
        }
        Ok(())
    }
}

fn bit_position(t: &TypeRef) -> u32 {
    match t {
        TypeRef::Bitfield { position, .. } => *position,
        _ => 0,
    }
}

/// Copies of `items` under the alias names that point at them, for the
/// aliases (`typedef struct _X X`) whose own name no item has: a lookup by
/// either name then finds the type. Sorted by alias, so the result does not
/// depend on hash order.
fn alias_copies<T: Clone>(
    items: &[T],
    aliases: HashMap<String, String>,
    named: impl Fn(&str) -> bool,
    name_of: impl Fn(&T) -> &String,
    rename: impl Fn(&mut T, String),
) -> Vec<T> {
    let index: HashMap<&str, usize> = items
        .iter()
        .enumerate()
        .map(|(i, t)| (name_of(t).as_str(), i))
        .collect();
    let mut aliases: Vec<(String, String)> = aliases.into_iter().collect();
    aliases.sort();
    let mut copies = Vec::new();
    for (alias, target) in aliases {
        if named(&alias) {
            continue;
        }
        if let Some(&i) = index.get(target.as_str()) {
            let mut copy = items[i].clone();
            rename(&mut copy, alias);
            copies.push(copy);
        }
    }
    copies
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bitfields_sit_in_their_declared_unit_unless_they_straddle_it() {
        assert_eq!(bitfield_place(35, 3, 4), (4, 3));
        assert_eq!(bitfield_place(0, 1, 1), (0, 0));
        assert_eq!(bitfield_place(70, 2, 8), (8, 6));
        // Packed: 30 bits into a 4-byte unit, 4 bits long, crosses it.
        assert_eq!(bitfield_place(30, 4, 4), (3, 6));
        // Odd unit sizes (a 16-byte __int128 or a damaged size).
        assert_eq!(bitfield_place(9, 3, 16), (1, 1));
    }

    #[test]
    fn anonymous_members_are_hoisted_and_named_anonymous_types_get_synthetic_names() {
        // struct outer { int a; union { long b; struct { char c; } d; }; };
        let g = Graph {
            nodes: vec![
                Node::Void,
                Node::Base {
                    name: "int",
                    size: 4,
                },
                Node::Base {
                    name: "long int",
                    size: 8,
                },
                Node::Base {
                    name: "char",
                    size: 1,
                },
                Node::Aggregate {
                    name: None,
                    is_union: false,
                    size: 1,
                    members: vec![Member {
                        name: Some("c"),
                        bit_offset: 0,
                        bit_size: 0,
                        ty: 3,
                    }],
                    complete: true,
                },
                Node::Aggregate {
                    name: None,
                    is_union: true,
                    size: 8,
                    members: vec![
                        Member {
                            name: Some("b"),
                            bit_offset: 0,
                            bit_size: 0,
                            ty: 2,
                        },
                        Member {
                            name: Some("d"),
                            bit_offset: 0,
                            bit_size: 0,
                            ty: 4,
                        },
                    ],
                    complete: true,
                },
                Node::Aggregate {
                    name: Some("outer"),
                    is_union: false,
                    size: 16,
                    members: vec![
                        Member {
                            name: Some("a"),
                            bit_offset: 0,
                            bit_size: 0,
                            ty: 1,
                        },
                        Member {
                            name: None,
                            bit_offset: 64,
                            bit_size: 0,
                            ty: 5,
                        },
                    ],
                    complete: true,
                },
            ],
        };
        let mut b = ModelBuilder::default();
        b.add_graph(&g, 0..g.nodes.len() as u32).unwrap();
        let m = b.finish();
        let outer = m.user_types.iter().find(|u| u.name == "outer").unwrap();
        let names: Vec<(&str, u64)> = outer
            .fields
            .iter()
            .map(|f| (f.name.as_str(), f.offset))
            .collect();
        assert_eq!(names, [("a", 0), ("b", 8), ("d", 8)]);
        assert_eq!(outer.fields[2].ty, TypeRef::Struct("outer::d".into()));
        assert!(m.user_types.iter().any(|u| u.name == "outer::d"));
    }

    #[test]
    fn cycles_end_in_errors() {
        let g = Graph {
            nodes: vec![
                Node::Void,
                Node::Typedef {
                    name: "a",
                    target: 2,
                },
                Node::Typedef {
                    name: "b",
                    target: 1,
                },
                Node::Pointer(3),
                Node::Aggregate {
                    name: Some("s"),
                    is_union: false,
                    size: 8,
                    members: vec![Member {
                        name: Some("p"),
                        bit_offset: 0,
                        bit_size: 0,
                        ty: 1,
                    }],
                    complete: true,
                },
            ],
        };
        let mut b = ModelBuilder::default();
        assert!(b.add_graph(&g, 0..5).is_err());
    }
}
