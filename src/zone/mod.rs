//! Placeholder for the zone store (being written on the `zone` branch); same API.
use std::path::{Path, PathBuf};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{LowerName, Name, Record, RecordType};

pub struct ZoneSet {
    zones: Vec<Zone>,
    files: Vec<PathBuf>,
}
pub struct Zone {
    origin: Name,
    file: PathBuf,
}
#[derive(Debug)]
pub struct ZoneErrors(pub Vec<ZoneError>);
#[derive(Debug)]
pub struct ZoneError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}
impl std::fmt::Display for ZoneErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for e in &self.0 {
            writeln!(
                f,
                "{}:{}: {}",
                e.file.display(),
                e.line.unwrap_or(0),
                e.message
            )?;
        }
        Ok(())
    }
}
impl std::error::Error for ZoneErrors {}
pub struct Lookup {
    pub rcode: ResponseCode,
    pub authoritative: bool,
    pub answers: Vec<Record>,
    pub authority: Vec<Record>,
    pub additional: Vec<Record>,
    pub cname_target: Option<Name>,
}
impl ZoneSet {
    pub fn load_dir(_dir: &Path) -> Result<ZoneSet, ZoneErrors> {
        Ok(ZoneSet {
            zones: vec![],
            files: vec![],
        })
    }
    pub fn find(&self, qname: &LowerName) -> Option<&Zone> {
        self.zones
            .iter()
            .find(|z| LowerName::from(&z.origin).zone_of(qname))
    }
    pub fn zones(&self) -> impl Iterator<Item = &Zone> {
        self.zones.iter()
    }
    pub fn source_files(&self) -> &[PathBuf] {
        &self.files
    }
    pub fn record_count(&self) -> usize {
        0
    }
}
impl Zone {
    pub fn origin(&self) -> &Name {
        &self.origin
    }
    pub fn serial(&self) -> u32 {
        0
    }
    pub fn file(&self) -> &Path {
        &self.file
    }
    pub fn record_count(&self) -> usize {
        0
    }
    pub fn name_exists(&self, _name: &LowerName) -> bool {
        false
    }
    pub fn negative_soa(&self) -> Record {
        unimplemented!()
    }
    pub fn lookup(&self, _qname: &Name, _qtype: RecordType) -> Lookup {
        unimplemented!()
    }
}
