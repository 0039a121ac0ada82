//! Compiling an [`AclConfig`] into [`AclTables`]: names resolved against
//! the switch tables (ports, port groups, address sets, each set compiled
//! once per field), matches turned into [`Node`] trees, and each
//! direction's rules filed by the ports they require and indexed. Apart
//! from the types the ACL stage evaluates at run time (the parent), which
//! is what a reader of the per-packet path wants to see.

use super::*;

struct Names<'a> {
    tables: &'a Tables,
    cfg: &'a AclConfig,
    /// Address sets compiled once per field they are compared with:
    /// Neutron names a set of thousands of addresses in thousands of rules.
    sets: HashMap<(Field, &'a str), ValueSet>,
}

impl<'a> Names<'a> {
    fn ports(&self, name: &str, out: &mut Vec<u128>) {
        if let Some(i) = self.tables.lport_by_name.get(name) {
            out.push(u128::from(i.0));
        }
    }

    fn value(
        &self,
        f: Field,
        v: &Value,
        exact: &mut Vec<u128>,
        masked: &mut Vec<(u128, u128)>,
    ) -> Result<(), String> {
        let full = f.full_mask();
        let mut push = |value: u128, mask: u128| {
            if mask == full {
                exact.push(value);
            } else {
                masked.push((value, mask));
            }
        };
        match v {
            Value::Masked { value, mask } => push(*value, *mask),
            Value::Port(p) => self.ports(p, exact),
            Value::PortGroup(g) => {
                let ports = self
                    .cfg
                    .port_groups
                    .get(g)
                    .ok_or_else(|| format!("no port group named {g:?}"))?;
                for p in ports {
                    self.ports(p, exact);
                }
            }
            Value::AddressSet(a) => {
                let addrs = self
                    .cfg
                    .address_sets
                    .get(a)
                    .ok_or_else(|| format!("no address set named {a:?}"))?;
                // Entries of another family (or kind) than the field's
                // cannot match it; OVN's sets are per family anyway
                // (`$pg_ip4`, `$pg_ip6`).
                for text in addrs {
                    if let Ok(Value::Masked { value, mask }) = ovn_expr::parse_constant(f, text) {
                        push(value, mask);
                    }
                }
            }
        }
        Ok(())
    }

    /// The values of a comparison of `f` with `values`.
    fn value_set(&self, f: Field, values: &[Value]) -> Result<ValueSet, String> {
        let (mut exact, mut masked) = (Vec::new(), Vec::new());
        for v in values {
            self.value(f, v, &mut exact, &mut masked)?;
        }
        exact.sort_unstable();
        exact.dedup();
        Ok(ValueSet::new(exact, masked))
    }

    fn node(&mut self, e: &'a Expr) -> Result<Node, String> {
        Ok(match e {
            Expr::Bool(b) => Node::Bool(*b),
            Expr::Pred { pred, negated } => Node::Pred(*pred, *negated),
            Expr::Cmp { field, op, values } => {
                let set = match &values[..] {
                    [Value::AddressSet(a)] => match self.sets.get(&(*field, a.as_str())) {
                        Some(set) => set.clone(),
                        None => {
                            let set = self.value_set(*field, values)?;
                            self.sets.insert((*field, a), set.clone());
                            set
                        }
                    },
                    _ => self.value_set(*field, values)?,
                };
                Node::Cmp(*field, *op, set)
            }
            Expr::And(v) => Node::And(v.iter().map(|e| self.node(e)).collect::<Result<_, _>>()?),
            Expr::Or(v) => Node::Or(v.iter().map(|e| self.node(e)).collect::<Result<_, _>>()?),
        })
    }
}

/// The ports a rule's match requires its port field to be one of, if it
/// requires that at the top level.
fn required_ports(node: &Node, port_field: Field) -> Option<&[u128]> {
    fn cmp(n: &Node, port_field: Field) -> Option<&[u128]> {
        match n {
            Node::Cmp(f, RelOp::Eq, set) if *f == port_field && set.masked.is_empty() => {
                Some(&set.exact[..])
            }
            _ => None,
        }
    }
    match node {
        Node::And(v) => v.iter().find_map(|n| cmp(n, port_field)),
        n => cmp(n, port_field),
    }
}

fn build_dir(mut rules: Vec<Rule>, port_field: Field) -> DirAcls {
    // Highest priority first; a stable sort keeps the given order of equal
    // priorities (OVN leaves overlapping equal priorities undefined).
    rules.sort_by_key(|r| std::cmp::Reverse(r.priority));
    let mut by_port: HashMap<LportIdx, Vec<u32>> = HashMap::new();
    let mut portless = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        match required_ports(&r.node, port_field) {
            Some(ports) => {
                for &p in ports {
                    by_port
                        .entry(LportIdx(p as u32))
                        .or_default()
                        .push(i as u32);
                }
            }
            None => portless.push(i as u32),
        }
    }
    // Ports of the same groups have the same list: indexed once.
    let mut lists: Vec<PortRules> = Vec::new();
    let mut seen: HashMap<Vec<u32>, u32> = HashMap::new();
    let by_port = by_port
        .into_iter()
        .map(|(p, mut v)| {
            v.extend_from_slice(&portless);
            v.sort_unstable();
            let k = *seen.entry(v).or_insert_with_key(|v| {
                lists.push(PortRules::new(&rules, v));
                lists.len() as u32 - 1
            });
            (p, k)
        })
        .collect();
    DirAcls {
        has_stateless: rules.iter().any(|r| r.action == AclAction::AllowStateless),
        portless: PortRules::new(&rules, &portless),
        lists: lists.into(),
        rules,
        by_port,
    }
}

impl AclTables {
    /// Compiles `cfg` against `tables` (ports and switches by name);
    /// returns the tables and the ACLs that could not be compiled.
    fn compile(
        tables: &Tables,
        cfg: &AclConfig,
        stateful: &Arc<Stateful>,
        generation: u32,
    ) -> (AclTables, Vec<AclError>) {
        let mut names = Names {
            tables,
            cfg,
            sets: HashMap::new(),
        };
        let mut errors = Vec::new();
        let mut per_dp: Vec<(Vec<Rule>, Vec<Rule>)> = tables
            .datapaths
            .iter()
            .map(|_| Default::default())
            .collect();
        let mut has_acls = vec![false; tables.datapaths.len()];
        // One running meter per SB meter, shared by the ACLs that name it.
        let mut meters: BTreeMap<&str, Arc<Meter>> = BTreeMap::new();
        for acl in &cfg.acls {
            let node = match names.node(&acl.expr) {
                Ok(n) => n,
                Err(why) => {
                    errors.push(AclError {
                        label: acl.label(),
                        why,
                    });
                    continue;
                }
            };
            let hits = stateful.counter(&acl.label());
            let log = acl.log.then(|| {
                let meter = acl.meter.as_ref().map(|m| {
                    meters
                        .entry(&m.name)
                        .or_insert_with(|| Arc::new(Meter::new(m)))
                        .clone()
                });
                Arc::new(Logged::new(
                    &stateful.acl_log,
                    &acl.name,
                    acl.severity,
                    acl.action,
                    acl.direction,
                    meter,
                ))
            });
            for (d, dp) in tables.datapaths.iter().enumerate() {
                if !acl.switches.contains(&dp.name) {
                    continue;
                }
                has_acls[d] = true;
                let rule = Rule {
                    name: acl.name.clone(),
                    priority: acl.priority,
                    direction: acl.direction,
                    action: acl.action,
                    match_text: acl.match_text.clone(),
                    log: log.clone(),
                    node: node.clone(),
                    hits: hits.clone(),
                };
                match acl.direction {
                    Direction::FromLport => per_dp[d].0.push(rule),
                    Direction::ToLport => per_dp[d].1.push(rule),
                }
            }
        }
        let datapaths: Vec<Option<DpAcls>> = per_dp
            .into_iter()
            .zip(has_acls)
            .map(|((from, to), has)| {
                has.then(|| DpAcls {
                    stateful: from
                        .iter()
                        .chain(&to)
                        .any(|r| r.action == AclAction::AllowRelated),
                    from_lport: build_dir(from, Field::Inport),
                    to_lport: build_dir(to, Field::Outport),
                })
            })
            .collect();
        let zones = tables
            .lports
            .iter()
            .map(|l| stateful.zone(&l.name))
            .collect();
        (
            AclTables {
                datapaths,
                zones,
                generation,
                stateful: Some(stateful.clone()),
            },
            errors,
        )
    }
}

impl Tables {
    /// Compiles and installs `cfg`, with the state it keeps in
    /// `stateful`; returns the ACLs left out. Each installation is a new
    /// ACL generation: connections committed under an older one are
    /// checked against the ACLs again by their next packet.
    pub fn install_acls(&mut self, cfg: &AclConfig, stateful: &Arc<Stateful>) -> Vec<AclError> {
        let generation = stateful.generation.fetch_add(1, Ordering::Relaxed) + 1;
        let (acls, errors) = AclTables::compile(self, cfg, stateful, generation);
        self.acls = acls;
        self.refresh_key_kinds();
        errors
    }
}
