// Package records owns how cloudhsm-local stores clusters and backups: a
// compact binary record per resource, versioned by its first byte, and the
// JSON records of earlier versions, which still load. The domain hands
// records to the store without knowing their format.
package records

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"
	"unsafe"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
	"github.com/cloudhsm-local/cloudhsm-local/internal/network"
	"github.com/cloudhsm-local/cloudhsm-local/internal/pki"
)

// Records are stored in a compact binary form: decoding 100,000 clusters
// at startup must take a fraction of a second, which encoding/json cannot
// do (about 20 µs a cluster). A record starts with a format byte; records
// that start with '{' are the JSON of earlier versions and still load.
//
// The layout is a fixed sequence of fields: unsigned and signed varints,
// length-prefixed strings, times as Unix nanoseconds (0 for the zero time).
// Appending a field means bumping the format byte and decoding the old one.
const (
	formatCluster1 byte = 0xC1 // without PreviousHsmType
	formatCluster2 byte = 0xC2 // without History
	formatCluster3 byte = 0xC3
	formatBackup1  byte = 0xB1
)

type encoder struct{ b []byte }

func (e *encoder) uint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *encoder) int(v int64)   { e.b = binary.AppendVarint(e.b, v) }
func (e *encoder) str(s string) {
	e.uint(uint64(len(s)))
	e.b = append(e.b, s...)
}
func (e *encoder) bool(v bool) {
	if v {
		e.b = append(e.b, 1)
	} else {
		e.b = append(e.b, 0)
	}
}
func (e *encoder) time(t time.Time) {
	if t.IsZero() {
		e.int(0)
		return
	}
	e.int(t.UnixNano())
}
func (e *encoder) prefix(p netip.Prefix) {
	if !p.IsValid() {
		e.str("")
		return
	}
	e.str(p.String())
}
func (e *encoder) tags(tags []cloudhsm.Tag) {
	e.uint(uint64(len(tags)))
	for _, t := range tags {
		e.str(t.Key)
		e.str(t.Value)
	}
}

// decoder reads a record. Strings are substrings of one copy of the record,
// so decoding allocates once for all of them.
type decoder struct {
	b   []byte // the unread part of the record
	s   string // the whole record, as one string
	off int    // where b starts in s
	err error
}

func newDecoder(b []byte) *decoder { return &decoder{b: b, s: string(b)} }

// newOwningDecoder decodes a record whose bytes the caller hands over for
// good (the store's Load gives each value its own copy): the strings share
// those bytes instead of copying them again, which halves the memory
// written while loading 100,000 records.
func newOwningDecoder(b []byte) *decoder {
	if len(b) == 0 {
		return &decoder{b: b}
	}
	return &decoder{b: b, s: unsafe.String(&b[0], len(b))}
}

var errTruncated = errors.New("record truncated")

func (d *decoder) advance(n int) {
	d.b = d.b[n:]
	d.off += n
}

func (d *decoder) uint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errTruncated
		return 0
	}
	d.advance(n)
	return v
}
func (d *decoder) int() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errTruncated
		return 0
	}
	d.advance(n)
	return v
}
func (d *decoder) str() string {
	n := d.uint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.b)) {
		d.err = errTruncated
		return ""
	}
	s := d.s[d.off : d.off+int(n)]
	d.advance(int(n))
	return s
}
func (d *decoder) bool() bool {
	if d.err != nil {
		return false
	}
	if len(d.b) == 0 {
		d.err = errTruncated
		return false
	}
	v := d.b[0] == 1
	d.advance(1)
	return v
}
func (d *decoder) time() time.Time {
	n := d.int()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}
func (d *decoder) prefix() netip.Prefix {
	s := d.str()
	if s == "" || d.err != nil {
		return netip.Prefix{}
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		d.err = fmt.Errorf("prefix %q: %w", s, err)
	}
	return p
}
func (d *decoder) count() int {
	n := d.uint()
	if n > uint64(len(d.b)) { // every element takes at least one byte
		d.err = errTruncated
		return 0
	}
	return int(n)
}
func (d *decoder) tags() []cloudhsm.Tag {
	n := d.count()
	if n == 0 {
		return nil
	}
	out := make([]cloudhsm.Tag, n)
	for i := range out {
		out[i] = cloudhsm.Tag{Key: d.str(), Value: d.str()}
	}
	return out
}

// EncodeCluster encodes a cluster (its exported fields) as a record.
func EncodeCluster(c *cloudhsm.Cluster) []byte {
	e := &encoder{b: make([]byte, 0, 512)}
	e.b = append(e.b, formatCluster3)
	e.str(c.Tenant.Account)
	e.str(c.Tenant.Region)
	e.str(c.ID)
	e.uint(c.Seq)
	e.uint(c.Version)
	e.str(c.HsmType)
	e.str(c.Mode)
	e.str(c.NetworkType)
	e.str(c.State)
	e.str(c.StateMessage)
	e.time(c.Created)
	e.int(int64(c.RetentionDays))
	e.uint(uint64(len(c.Subnets)))
	for _, sn := range c.Subnets {
		e.str(sn.ID)
		e.str(sn.VpcID)
		e.str(sn.AZ)
		e.prefix(sn.CIDR)
		e.prefix(sn.IPv6CIDR)
	}
	e.str(c.VpcID)
	e.str(c.SecurityGroup)
	e.str(c.SourceBackupID)
	e.str(c.Csr)
	e.str(c.CsrHsmID)
	e.str(c.ClusterCertificate)
	e.tags(c.Tags)
	e.uint(uint64(len(c.Hsms)))
	for _, h := range c.Hsms {
		e.str(h.ID)
		e.str(h.AZ)
		e.str(h.SubnetID)
		e.str(h.EniID)
		e.str(h.EniIP)
		e.str(h.EniIPv6)
		e.str(h.HsmType)
		e.str(h.State)
		e.str(h.StateMessage)
		e.time(h.Created)
		e.time(h.Due)
		e.bool(h.Identity != nil)
		if id := h.Identity; id != nil {
			e.str(id.HardwareKeyPEM)
			e.str(id.PartitionKeyPEM)
			e.str(id.HsmCertificate)
			e.str(id.AwsHardwareCertificate)
			e.str(id.ManufacturerHardwareCertificate)
			e.str(id.Serial)
		}
	}
	e.time(c.Due)
	e.time(c.NextBackup)
	e.str(c.TargetHsmType)
	e.time(c.HsmTypeRollbackExpiration)
	e.bool(c.ManualActivationPending)
	e.time(c.Deleted)
	e.int(int64(c.Partition))
	e.str(c.StateBeforeDegraded)
	e.str(c.PreviousHsmType)
	// The domain keeps a cluster's history packed; the record holds the
	// same bytes, which a decoded cluster then shares.
	e.str(c.PackedHistory())
	return e.b
}

// DecodeCluster decodes a cluster record; b may be reused afterwards.
func DecodeCluster(b []byte) (*cloudhsm.Cluster, error) { return decodeClusterWith(b, newDecoder) }

// DecodeOwnedCluster decodes a record whose bytes it may keep (the caller
// never changes or reuses them).
func DecodeOwnedCluster(b []byte) (*cloudhsm.Cluster, error) {
	return decodeClusterWith(b, newOwningDecoder)
}

func decodeClusterWith(b []byte, newDec func([]byte) *decoder) (*cloudhsm.Cluster, error) {
	if len(b) > 0 && b[0] == '{' {
		var c cloudhsm.Cluster
		err := json.Unmarshal(b, &c)
		return &c, err
	}
	if len(b) == 0 || (b[0] < formatCluster1 || b[0] > formatCluster3) {
		return nil, errors.New("unknown cluster record format")
	}
	d := newDec(b)
	d.advance(1)
	c := &cloudhsm.Cluster{}
	c.Tenant.Account = d.str()
	c.Tenant.Region = d.str()
	c.ID = d.str()
	c.Seq = d.uint()
	c.Version = d.uint()
	c.HsmType = d.str()
	c.Mode = d.str()
	c.NetworkType = d.str()
	c.State = d.str()
	c.StateMessage = d.str()
	c.Created = d.time()
	c.RetentionDays = int(d.int())
	if n := d.count(); n > 0 {
		c.Subnets = make([]network.Subnet, n)
		for i := range c.Subnets {
			sn := &c.Subnets[i]
			sn.ID, sn.VpcID, sn.AZ = d.str(), d.str(), d.str()
			sn.CIDR, sn.IPv6CIDR = d.prefix(), d.prefix()
		}
	}
	c.VpcID = d.str()
	c.SecurityGroup = d.str()
	c.SourceBackupID = d.str()
	c.Csr = d.str()
	c.CsrHsmID = d.str()
	c.ClusterCertificate = d.str()
	c.Tags = d.tags()
	n := d.count()
	c.Hsms = make([]*cloudhsm.Hsm, n)
	for i := range c.Hsms {
		h := &cloudhsm.Hsm{}
		h.ID, h.AZ, h.SubnetID = d.str(), d.str(), d.str()
		h.EniID, h.EniIP, h.EniIPv6 = d.str(), d.str(), d.str()
		h.HsmType, h.State, h.StateMessage = d.str(), d.str(), d.str()
		h.Created, h.Due = d.time(), d.time()
		if d.bool() {
			h.Identity = &pki.HSMIdentity{
				HardwareKeyPEM: d.str(), PartitionKeyPEM: d.str(), HsmCertificate: d.str(),
				AwsHardwareCertificate: d.str(), ManufacturerHardwareCertificate: d.str(), Serial: d.str(),
			}
		}
		c.Hsms[i] = h
	}
	c.Due = d.time()
	c.NextBackup = d.time()
	c.TargetHsmType = d.str()
	c.HsmTypeRollbackExpiration = d.time()
	c.ManualActivationPending = d.bool()
	c.Deleted = d.time()
	c.Partition = int(d.int())
	c.StateBeforeDegraded = d.str()
	if b[0] >= formatCluster2 {
		c.PreviousHsmType = d.str()
	}
	if b[0] >= formatCluster3 {
		if h := d.str(); d.err == nil {
			if err := c.SetPackedHistory(h); err != nil {
				d.err = err
			}
		}
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	return c, d.err
}

// EncodeBackup encodes a backup as a record.
func EncodeBackup(b *cloudhsm.Backup) []byte {
	e := &encoder{b: make([]byte, 0, 256)}
	e.b = append(e.b, formatBackup1)
	e.str(b.Tenant.Account)
	e.str(b.Tenant.Region)
	e.str(b.ID)
	e.uint(b.Seq)
	e.str(b.ClusterID)
	e.str(b.State)
	e.time(b.Created)
	e.bool(b.NeverExpires)
	e.time(b.DeleteTimestamp)
	e.time(b.CopyTimestamp)
	e.str(b.SourceRegion)
	e.str(b.SourceBackup)
	e.str(b.SourceCluster)
	e.tags(b.Tags)
	e.str(b.HsmType)
	e.str(b.Mode)
	e.str(b.ClusterCertificate)
	e.str(b.Policy)
	e.bool(b.IsCopy)
	e.time(b.Due)
	e.bool(b.PurgedByService)
	e.int(int64(b.RetentionDays))
	e.time(b.ExpireAt)
	return e.b
}

// DecodeBackup decodes a backup record; data may be reused afterwards.
func DecodeBackup(data []byte) (*cloudhsm.Backup, error) { return decodeBackupWith(data, newDecoder) }

// DecodeOwnedBackup decodes a record whose bytes it may keep.
func DecodeOwnedBackup(data []byte) (*cloudhsm.Backup, error) {
	return decodeBackupWith(data, newOwningDecoder)
}

func decodeBackupWith(data []byte, newDec func([]byte) *decoder) (*cloudhsm.Backup, error) {
	if len(data) > 0 && data[0] == '{' {
		var b cloudhsm.Backup
		err := json.Unmarshal(data, &b)
		return &b, err
	}
	if len(data) == 0 || data[0] != formatBackup1 {
		return nil, errors.New("unknown backup record format")
	}
	d := newDec(data)
	d.advance(1)
	b := &cloudhsm.Backup{}
	b.Tenant.Account, b.Tenant.Region = d.str(), d.str()
	b.ID = d.str()
	b.Seq = d.uint()
	b.ClusterID = d.str()
	b.State = d.str()
	b.Created = d.time()
	b.NeverExpires = d.bool()
	b.DeleteTimestamp = d.time()
	b.CopyTimestamp = d.time()
	b.SourceRegion, b.SourceBackup, b.SourceCluster = d.str(), d.str(), d.str()
	b.Tags = d.tags()
	b.HsmType, b.Mode = d.str(), d.str()
	b.ClusterCertificate = d.str()
	b.Policy = d.str()
	b.IsCopy = d.bool()
	b.Due = d.time()
	b.PurgedByService = d.bool()
	b.RetentionDays = int(d.int())
	b.ExpireAt = d.time()
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("%d trailing bytes", len(d.b))
	}
	return b, d.err
}

// Codec is the records format as the domain's cloudhsm.Codec.
type Codec struct{}

// EncodeCluster implements cloudhsm.Codec.
func (Codec) EncodeCluster(c *cloudhsm.Cluster) []byte { return EncodeCluster(c) }

// DecodeOwnedCluster implements cloudhsm.Codec.
func (Codec) DecodeOwnedCluster(b []byte) (*cloudhsm.Cluster, error) { return DecodeOwnedCluster(b) }

// EncodeBackup implements cloudhsm.Codec.
func (Codec) EncodeBackup(b *cloudhsm.Backup) []byte { return EncodeBackup(b) }

// DecodeOwnedBackup implements cloudhsm.Codec.
func (Codec) DecodeOwnedBackup(b []byte) (*cloudhsm.Backup, error) { return DecodeOwnedBackup(b) }

// subnetRecord is the JSON record of a learned subnet (rare: one per
// subnet a tenant ever used).
type subnetRecord struct {
	Tenant cloudhsm.Tenant
	Subnet network.Subnet
}

// EncodeSubnet implements cloudhsm.Codec.
func (Codec) EncodeSubnet(t cloudhsm.Tenant, sn network.Subnet) ([]byte, error) {
	return json.Marshal(subnetRecord{Tenant: t, Subnet: sn})
}

// DecodeSubnet implements cloudhsm.Codec.
func (Codec) DecodeSubnet(b []byte) (cloudhsm.Tenant, network.Subnet, error) {
	var r subnetRecord
	err := json.Unmarshal(b, &r)
	return r.Tenant, r.Subnet, err
}
