package api

import (
	"strconv"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
)

// epoch is a timestamp encoded as AWS JSON 1.1 does: epoch seconds as a
// JSON number with millisecond precision.
type epoch time.Time

func (e epoch) IsZero() bool { return time.Time(e).IsZero() }

func (e epoch) MarshalJSON() ([]byte, error) {
	ms := time.Time(e).UnixMilli()
	b := strconv.AppendInt(nil, ms/1000, 10)
	if frac := ms % 1000; frac != 0 {
		b = append(b, '.')
		b = append(b, byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
		for b[len(b)-1] == '0' {
			b = b[:len(b)-1]
		}
	}
	return b, nil
}

type tagJSON struct {
	Key   string `json:"Key"`
	Value string `json:"Value"`
}

type retentionJSON struct {
	Type  string `json:"Type,omitempty"`
	Value string `json:"Value,omitempty"`
}

type certificatesJSON struct {
	ClusterCsr                      string `json:"ClusterCsr,omitempty"`
	HsmCertificate                  string `json:"HsmCertificate,omitempty"`
	AwsHardwareCertificate          string `json:"AwsHardwareCertificate,omitempty"`
	ManufacturerHardwareCertificate string `json:"ManufacturerHardwareCertificate,omitempty"`
	ClusterCertificate              string `json:"ClusterCertificate,omitempty"`
}

type hsmJSON struct {
	AvailabilityZone string `json:"AvailabilityZone,omitempty"`
	ClusterId        string `json:"ClusterId,omitempty"`
	SubnetId         string `json:"SubnetId,omitempty"`
	EniId            string `json:"EniId,omitempty"`
	EniIp            string `json:"EniIp,omitempty"`
	EniIpV6          string `json:"EniIpV6,omitempty"`
	HsmId            string `json:"HsmId"`
	HsmType          string `json:"HsmType,omitempty"`
	State            string `json:"State,omitempty"`
	StateMessage     string `json:"StateMessage,omitempty"`
}

type clusterJSON struct {
	BackupPolicy              string            `json:"BackupPolicy,omitempty"`
	BackupRetentionPolicy     *retentionJSON    `json:"BackupRetentionPolicy,omitempty"`
	ClusterId                 string            `json:"ClusterId,omitempty"`
	CreateTimestamp           epoch             `json:"CreateTimestamp,omitzero"`
	Hsms                      []hsmJSON         `json:"Hsms"`
	HsmType                   string            `json:"HsmType,omitempty"`
	HsmTypeRollbackExpiration epoch             `json:"HsmTypeRollbackExpiration,omitzero"`
	SecurityGroup             string            `json:"SecurityGroup,omitempty"`
	SourceBackupId            string            `json:"SourceBackupId,omitempty"`
	State                     string            `json:"State,omitempty"`
	StateMessage              string            `json:"StateMessage,omitempty"`
	SubnetMapping             map[string]string `json:"SubnetMapping,omitempty"`
	VpcId                     string            `json:"VpcId,omitempty"`
	NetworkType               string            `json:"NetworkType,omitempty"`
	Certificates              certificatesJSON  `json:"Certificates"`
	TagList                   []tagJSON         `json:"TagList,omitempty"`
	Mode                      string            `json:"Mode,omitempty"`
}

type backupJSON struct {
	BackupId        string    `json:"BackupId"`
	BackupArn       string    `json:"BackupArn,omitempty"`
	BackupState     string    `json:"BackupState,omitempty"`
	ClusterId       string    `json:"ClusterId,omitempty"`
	CreateTimestamp epoch     `json:"CreateTimestamp,omitzero"`
	CopyTimestamp   epoch     `json:"CopyTimestamp,omitzero"`
	NeverExpires    bool      `json:"NeverExpires"`
	SourceRegion    string    `json:"SourceRegion,omitempty"`
	SourceBackup    string    `json:"SourceBackup,omitempty"`
	SourceCluster   string    `json:"SourceCluster,omitempty"`
	DeleteTimestamp epoch     `json:"DeleteTimestamp,omitzero"`
	TagList         []tagJSON `json:"TagList,omitempty"`
	HsmType         string    `json:"HsmType,omitempty"`
	Mode            string    `json:"Mode,omitempty"`
}

func tagsJSON(tags []cloudhsm.Tag) []tagJSON {
	if len(tags) == 0 {
		return nil
	}
	out := make([]tagJSON, len(tags))
	for i, t := range tags {
		out[i] = tagJSON{Key: t.Key, Value: t.Value}
	}
	return out
}

func hsmToJSON(clusterID string, h *cloudhsm.Hsm) hsmJSON {
	return hsmJSON{
		AvailabilityZone: h.AZ,
		ClusterId:        clusterID,
		SubnetId:         h.SubnetID,
		EniId:            h.EniID,
		EniIp:            h.EniIP,
		EniIpV6:          h.EniIPv6,
		HsmId:            h.ID,
		HsmType:          h.HsmType,
		State:            h.State,
		StateMessage:     h.StateMessage,
	}
}

func clusterToJSON(c *cloudhsm.Cluster) clusterJSON {
	out := clusterJSON{
		BackupPolicy:              "DEFAULT",
		BackupRetentionPolicy:     &retentionJSON{Type: "DAYS", Value: strconv.Itoa(c.RetentionDays)},
		ClusterId:                 c.ID,
		CreateTimestamp:           epoch(c.Created),
		Hsms:                      make([]hsmJSON, len(c.Hsms)),
		HsmType:                   c.HsmType,
		HsmTypeRollbackExpiration: epoch(c.HsmTypeRollbackExpiration),
		SourceBackupId:            c.SourceBackupID,
		State:                     c.State,
		StateMessage:              c.StateMessage,
		SubnetMapping:             c.SubnetMapping(),
		VpcId:                     c.VpcID,
		NetworkType:               c.NetworkType,
		TagList:                   tagsJSON(c.Tags),
		Mode:                      c.Mode,
	}
	if c.ShowSecurityGroup() {
		out.SecurityGroup = c.SecurityGroup
	}
	for i, h := range c.Hsms {
		out.Hsms[i] = hsmToJSON(c.ID, h)
	}
	v := c.Certificates()
	out.Certificates = certificatesJSON(v)
	return out
}

func backupToJSON(b *cloudhsm.Backup) backupJSON {
	return backupJSON{
		BackupId:        b.ID,
		BackupArn:       b.ARN(),
		BackupState:     b.State,
		ClusterId:       b.ClusterID,
		CreateTimestamp: epoch(b.Created),
		CopyTimestamp:   epoch(b.CopyTimestamp),
		NeverExpires:    b.NeverExpires,
		SourceRegion:    b.SourceRegion,
		SourceBackup:    b.SourceBackup,
		SourceCluster:   b.SourceCluster,
		DeleteTimestamp: epoch(b.DeleteTimestamp),
		TagList:         tagsJSON(b.Tags),
		HsmType:         b.HsmType,
		Mode:            b.Mode,
	}
}
