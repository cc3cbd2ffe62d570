//! Two-tier membership between JAP and RAP (seed §3.3): the JAP reports an
//! approximate target count per group; the RAP acks with the accuracy band
//! the JAP must use until the next ack (e.g. ±25 %: a JAP that reported 100
//! reports again below 75 or above 125).

use pias_dataplane::types::{GroupAddr, ProxyId};

use super::cursor::{Reader, Writer};
use super::group::{emit_group_addr, parse_group_addr, GROUP_ADDR_LEN};
use super::{EmitError, WireError, MAX_REPORT_ACK_ENTRIES, MAX_REPORT_ENTRIES};

const ENTRY_OVERLOADED: u8 = 1 << 0;

/// One group's state at the reporting JAP.
///
/// Wire (16 bytes): group (7), approximate target count (4), flags (1: bit
/// 0 overloaded, others zero), report sequence (4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReportEntry {
    /// The group.
    pub group: GroupAddr,
    /// Live targets of the group at this JAP (0: the JAP no longer serves
    /// the group).
    pub approx_targets: u32,
    /// The JAP's targets for the group are overloaded (seed §3.3, end).
    pub overloaded: bool,
    /// Per (JAP, group) counter, so a RAP ignores reordered older reports
    /// and its ack names the report it answers.
    pub seq: u32,
}

impl ReportEntry {
    const LEN: usize = GROUP_ADDR_LEN + 4 + 1 + 4;
}

/// JAP → RAP: approximate counts for groups this RAP serves.
///
/// Body: JAP (4; must equal the header's sender), count (1), `count` ×
/// [`ReportEntry`], `count` ≤ [`MAX_REPORT_ENTRIES`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Report {
    /// The reporting JAP.
    pub jap: ProxyId,
    /// Per-group state.
    pub entries: Vec<ReportEntry>,
}

/// The shared body of [`Report`] and [`JapAnnounce`]: JAP (4), count (1),
/// `count` × [`ReportEntry`].
fn parse_entries(r: &mut Reader<'_>) -> Result<(ProxyId, Vec<ReportEntry>), WireError> {
    let jap = ProxyId(r.u32()?);
    let n = r.count("report entries", MAX_REPORT_ENTRIES, ReportEntry::LEN)?;
    let mut entries = Vec::with_capacity(n);
    for _ in 0..n {
        let group = parse_group_addr(r)?;
        let approx_targets = r.u32()?;
        let flags = r.u8()?;
        if flags & !ENTRY_OVERLOADED != 0 {
            return Err(WireError::BadField("report flags"));
        }
        let seq = r.u32()?;
        entries.push(ReportEntry {
            group,
            approx_targets,
            overloaded: flags & ENTRY_OVERLOADED != 0,
            seq,
        });
    }
    Ok((jap, entries))
}

fn emit_entries(
    w: &mut Writer<'_>,
    jap: ProxyId,
    entries: &[ReportEntry],
) -> Result<(), EmitError> {
    w.u32(jap.0)?;
    w.count("report entries", entries.len(), MAX_REPORT_ENTRIES)?;
    entries.iter().try_for_each(|e| {
        emit_group_addr(w, &e.group)?;
        w.u32(e.approx_targets)?;
        w.u8(if e.overloaded { ENTRY_OVERLOADED } else { 0 })?;
        w.u32(e.seq)
    })
}

impl Report {
    pub(crate) fn body_len(&self) -> usize {
        4 + 1 + self.entries.len() * ReportEntry::LEN
    }

    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let (jap, entries) = parse_entries(r)?;
        Ok(Report { jap, entries })
    }

    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<(), EmitError> {
        emit_entries(w, self.jap, &self.entries)
    }
}

/// JAP → every proxy: its live target counts for RAP-less groups (seed
/// §3.2, end: "spread JAP information among all APs"). Same body as
/// [`Report`], different contract: sent to every live proxy rather than
/// to a group's RAPs, never acknowledged (a receiver of 20 000 would
/// implode the sender), counts exact rather than banded, and repeated
/// every announce interval so that a lost datagram is repaired and a
/// receiver can expire entries that stop being refreshed. `seq` orders
/// the announcements of one `(JAP, group)`; a count of 0 withdraws the
/// JAP from the group.
///
/// Body: JAP (4; must equal the header's sender), count (1), `count` ×
/// [`ReportEntry`], `count` ≤ [`MAX_REPORT_ENTRIES`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct JapAnnounce {
    /// The announcing JAP.
    pub jap: ProxyId,
    /// Per-group state.
    pub entries: Vec<ReportEntry>,
}

impl JapAnnounce {
    pub(crate) fn body_len(&self) -> usize {
        4 + 1 + self.entries.len() * ReportEntry::LEN
    }

    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let (jap, entries) = parse_entries(r)?;
        Ok(JapAnnounce { jap, entries })
    }

    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<(), EmitError> {
        emit_entries(w, self.jap, &self.entries)
    }
}

/// The RAP's answer for one group.
///
/// Wire (12 bytes): group (7), acked report sequence (4), band in percent
/// (1, 0–100; 0 = report every change).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ReportAckEntry {
    /// The group.
    pub group: GroupAddr,
    /// The report sequence this acknowledges.
    pub seq: u32,
    /// Report again only when the count leaves ±`band_pct` % of the last
    /// reported value.
    pub band_pct: u8,
}

impl ReportAckEntry {
    const LEN: usize = GROUP_ADDR_LEN + 4 + 1;
    /// The widest band a RAP may ask for.
    pub const MAX_BAND_PCT: u8 = 100;
}

/// RAP → JAP: reports received, with the accuracy band per group.
///
/// Body: count (1), `count` × [`ReportAckEntry`], `count` ≤
/// [`MAX_REPORT_ACK_ENTRIES`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ReportAck {
    /// Per-group acks.
    pub entries: Vec<ReportAckEntry>,
}

impl ReportAck {
    pub(crate) fn body_len(&self) -> usize {
        1 + self.entries.len() * ReportAckEntry::LEN
    }

    pub(crate) fn parse(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let n = r.count("report acks", MAX_REPORT_ACK_ENTRIES, ReportAckEntry::LEN)?;
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let group = parse_group_addr(r)?;
            let seq = r.u32()?;
            let band_pct = r.u8()?;
            if band_pct > ReportAckEntry::MAX_BAND_PCT {
                return Err(WireError::BadField("band"));
            }
            entries.push(ReportAckEntry {
                group,
                seq,
                band_pct,
            });
        }
        Ok(ReportAck { entries })
    }

    pub(crate) fn emit(&self, w: &mut Writer<'_>) -> Result<(), EmitError> {
        w.count("report acks", self.entries.len(), MAX_REPORT_ACK_ENTRIES)?;
        self.entries.iter().try_for_each(|e| {
            if e.band_pct > ReportAckEntry::MAX_BAND_PCT {
                return Err(EmitError::BadField("band"));
            }
            emit_group_addr(w, &e.group)?;
            w.u32(e.seq)?;
            w.u8(e.band_pct)
        })
    }
}
