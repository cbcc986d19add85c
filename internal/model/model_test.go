package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

func mustLoad(tb testing.TB) *Model {
	tb.Helper()
	m, err := Load()
	if err != nil {
		tb.Fatalf("Load: %v", err)
	}
	return m
}

func TestOperations(t *testing.T) {
	m := mustLoad(t)
	want := []string{
		"CopyBackupToRegion", "CreateCluster", "CreateHsm", "DeleteBackup",
		"DeleteCluster", "DeleteHsm", "DeleteResourcePolicy", "DescribeBackups",
		"DescribeClusters", "GetResourcePolicy", "InitializeCluster", "ListTags",
		"ModifyBackupAttributes", "ModifyCluster", "PutResourcePolicy",
		"RestoreBackup", "TagResource", "UntagResource",
	}
	got := m.Operations()
	if !slices.Equal(got, want) {
		t.Fatalf("Operations() = %v, want %v", got, want)
	}
	for _, op := range want {
		if !m.HasOperation(op) {
			t.Errorf("HasOperation(%q) = false", op)
		}
	}
	for _, op := range []string{"", "createCluster", "CreateClusters", "BaldrApiService.CreateCluster"} {
		if m.HasOperation(op) {
			t.Errorf("HasOperation(%q) = true", op)
		}
	}
	got[0] = "mutated"
	if m.Operations()[0] != want[0] {
		t.Error("Operations() returned the model's own slice")
	}
	if m.TargetPrefix() != "BaldrApiService" || m.APIVersion() != "2017-04-28" {
		t.Errorf("metadata: %q %q", m.TargetPrefix(), m.APIVersion())
	}
}

func TestLoadOnce(t *testing.T) {
	a, b := mustLoad(t), mustLoad(t)
	if a != b {
		t.Fatal("Load returned different models")
	}
}

func TestUnknownOperation(t *testing.T) {
	err := mustLoad(t).Check("Nope", []byte(`{}`))
	var uo *UnknownOperationError
	if !errors.As(err, &uo) || uo.Operation != "Nope" {
		t.Fatalf("got %#v", err)
	}
}

// TestConstraintTable checks that the table is derived from the JSON model.
func TestConstraintTable(t *testing.T) {
	m := mustLoad(t)
	tk := m.shapes["TagKey"]
	if tk.kind != kindString || !tk.hasMin || tk.min != 1 || !tk.hasMax || tk.max != 128 ||
		tk.pattern != `^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$` || tk.re == nil || tk.re.class == nil {
		t.Errorf("TagKey: %+v", tk)
	}
	req := m.shapes["CreateClusterRequest"]
	var names, required []string
	for _, mem := range req.members {
		names = append(names, mem.name)
		if mem.required {
			required = append(required, mem.name)
		}
	}
	if want := []string{"BackupRetentionPolicy", "HsmType", "SourceBackupId", "SubnetIds", "NetworkType", "TagList", "Mode"}; !slices.Equal(names, want) {
		t.Errorf("CreateClusterRequest members %v, want %v (declaration order)", names, want)
	}
	if want := []string{"HsmType", "SubnetIds"}; !slices.Equal(required, want) {
		t.Errorf("required %v, want %v", required, want)
	}
	if f := m.shapes["Filters"]; f.kind != kindMap || f.key.name != "Field" || f.value.name != "Strings" || f.value.elem.name != "String" || f.hasMin || f.max != 30 {
		t.Errorf("Filters: %+v", f)
	}
	if e := m.shapes["ClusterMode"]; !slices.Equal(e.enum, []string{"FIPS", "NON_FIPS"}) {
		t.Errorf("ClusterMode enum %v", e.enum)
	}
	if i := m.shapes["ClustersMaxSize"]; i.kind != kindInteger || i.min != 1 || i.max != 25 {
		t.Errorf("ClustersMaxSize %+v", i)
	}
	for op, in := range m.inputs {
		if in == nil || in.kind != kindStructure {
			t.Errorf("%s: input %+v", op, in)
		}
	}
}

func TestParseRejectsBrokenModels(t *testing.T) {
	const head = `{"metadata":{"protocol":"json"},`
	for name, c := range map[string]struct{ doc, want string }{
		"not json":           {`{`, "parsing service model"},
		"protocol":           {`{"metadata":{"protocol":"rest-json"},"operations":{},"shapes":{}}`, `unsupported protocol "rest-json"`},
		"unknown type":       {head + `"operations":{},"shapes":{"A":{"type":"weird"}}}`, `shape A: unknown type "weird"`},
		"dangling member":    {head + `"operations":{},"shapes":{"A":{"type":"structure","members":{"B":{"shape":"Missing"}}}}}`, `shape A.B: reference to unknown shape "Missing"`},
		"duplicate member":   {head + `"operations":{},"shapes":{"S":{"type":"string"},"A":{"type":"structure","members":{"B":{"shape":"S"},"B":{"shape":"S"}}}}}`, "shape A: duplicate member B"},
		"dangling element":   {head + `"operations":{},"shapes":{"L":{"type":"list","member":{"shape":"Missing"}}}}`, `shape L: reference to unknown shape "Missing"`},
		"list without elem":  {head + `"operations":{},"shapes":{"L":{"type":"list"}}}`, "shape L: missing shape reference"},
		"dangling map value": {head + `"operations":{},"shapes":{"S":{"type":"string"},"M":{"type":"map","key":{"shape":"S"},"value":{"shape":"Missing"}}}}`, `shape M: reference to unknown shape "Missing"`},
		"dangling input":     {head + `"operations":{"Op":{"input":{"shape":"Missing"}}},"shapes":{}}`, `shape operation Op: reference to unknown shape "Missing"`},
		"input not struct":   {head + `"operations":{"Op":{"input":{"shape":"S"}}},"shapes":{"S":{"type":"string"}}}`, "operation Op: input shape S is not a structure"},
		"bad pattern":        {head + `"operations":{},"shapes":{"A":{"type":"string","pattern":"a(b"}}}`, "shape A: "},
		"pattern on integer": {head + `"operations":{},"shapes":{"A":{"type":"integer","pattern":"a"}}}`, "shape A: pattern on a integer shape"},
		"java-only regex":    {head + `"operations":{},"shapes":{"A":{"type":"string","pattern":"\\Qa\\E"}}}`, "shape A: "},
		"bad required":       {head + `"operations":{},"shapes":{"A":{"type":"structure","required":["X"],"members":{}}}}`, "shape A: required member X is not declared"},
		"fractional max":     {head + `"operations":{},"shapes":{"A":{"type":"string","max":1.5}}}`, "shape A: max: "},
		"fractional min":     {head + `"operations":{},"shapes":{"A":{"type":"string","min":0.5}}}`, "shape A: min: "},
		"sparse list":        {head + `"operations":{},"shapes":{"S":{"type":"string"},"L":{"type":"list","member":{"shape":"S"},"sparse":true}}}`, "shape L: sparse list shapes are not supported"},
	} {
		_, err := parse([]byte(c.doc))
		if err == nil {
			t.Errorf("%s: parse succeeded", name)
			continue
		}
		if !strings.HasPrefix(err.Error(), "model: ") || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q, want it to contain %q", name, err, c.want)
		}
	}
}

type checkCase struct {
	name string
	op   string
	body string
}

func TestCheckValid(t *testing.T) {
	m := mustLoad(t)
	cases := []checkCase{
		{"create cluster minimal", "CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":["subnet-0123456789abcdef0"]}`},
		{"create cluster full", "CreateCluster", `{
			"BackupRetentionPolicy": {"Type": "DAYS", "Value": "90"},
			"HsmType": "hsm1.medium",
			"SourceBackupId": "arn:aws:cloudhsm:us-east-1:123456789012:backup/backup-ro5c4er4aac",
			"SubnetIds": ["subnet-0123456789abcdef0", "subnet-89abcdef", "subnet-0123456789ABCDEF0"],
			"NetworkType": "DUALSTACK",
			"TagList": [{"Key": "Name", "Value": "my cluster"}, {"Key": "empty", "Value": ""}],
			"Mode": "NON_FIPS"
		}`},
		{"create cluster source backup id", "CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":["subnet-0123456789abcdef0"],"SourceBackupId":"backup-ro5c4er4aac"}`},
		{"create cluster 10 subnets", "CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":["subnet-00000000","subnet-00000001","subnet-00000002","subnet-00000003","subnet-00000004","subnet-00000005","subnet-00000006","subnet-00000007","subnet-00000008","subnet-00000009"]}`},
		{"describe clusters empty object", "DescribeClusters", `{}`},
		{"describe clusters empty body", "DescribeClusters", ``},
		{"describe clusters surrounding whitespace", "DescribeClusters", " \r\n\t{ \n}\n "},
		{"describe clusters filters", "DescribeClusters", `{"Filters":{"clusterIds":["cluster-igklspoyj5v"],"states":["ACTIVE","UNINITIALIZED"],"vpcIds":[]},"MaxResults":25,"NextToken":"eyJ0b2tlbiI6IDF9"}`},
		{"describe clusters max results 1", "DescribeClusters", `{"MaxResults":1}`},
		{"describe backups", "DescribeBackups", `{"Filters":{"neverExpires":["true"],"sourceBackupIds":["backup-ro5c4er4aac"]},"Shared":true,"SortAscending":false,"MaxResults":50}`},
		{"tag resource unicode", "TagResource", `{"ResourceId":"cluster-igklspoyj5v","TagList":[{"Key":"Ünïcödé key","Value":"日本語 の 値"},{"Key":"a:b/c=d+e-f@g_h.i","Value":"١٢٣ ½"},{"Key":"nbsp\u00a0ideographic\u3000space","Value":"x"}]}`},
		{"tag resource backup", "TagResource", `{"ResourceId":"backup-ro5c4er4aac","TagList":[{"Key":"k","Value":"v"}]}`},
		{"tag key 128 two-byte chars", "TagResource", `{"ResourceId":"cluster-igklspoyj5v","TagList":[{"Key":"` + strings.Repeat("é", 128) + `","Value":"` + strings.Repeat("ß", 256) + `"}]}`},
		{"tag key 128 astral chars", "TagResource", `{"ResourceId":"cluster-igklspoyj5v","TagList":[{"Key":"` + strings.Repeat("𝐀", 128) + `","Value":"v"}]}`},
		{"untag", "UntagResource", `{"ResourceId":"cluster-igklspoyj5v","TagKeyList":["Name","Ünïcödé key"]}`},
		{"list tags", "ListTags", `{"ResourceId":"cluster-igklspoyj5v","MaxResults":100,"NextToken":""}`},
		{"create hsm", "CreateHsm", `{"ClusterId":"cluster-igklspoyj5v","AvailabilityZone":"us-east-1a","IpAddress":"10.0.0.5"}`},
		{"create hsm gov", "CreateHsm", `{"ClusterId":"cluster-igklspoyj5v","AvailabilityZone":"us-gov-west-1b"}`},
		{"delete hsm by eni", "DeleteHsm", `{"ClusterId":"cluster-igklspoyj5v","EniId":"eni-02e9cefea8bdb2371"}`},
		{"delete hsm by id", "DeleteHsm", `{"ClusterId":"cluster-igklspoyj5v","HsmId":"hsm-ted36yp5b2x"}`},
		{"initialize", "InitializeCluster", `{"ClusterId":"cluster-igklspoyj5v","SignedCert":"-----BEGIN CERTIFICATE-----\nMIIB+zCCAWSgAwIBAgIJAN==\n-----END CERTIFICATE-----\n","TrustAnchor":"-----BEGIN CERTIFICATE-----\r\n\tMIIB\u000b\f\n-----END CERTIFICATE-----"}`},
		{"modify backup attributes", "ModifyBackupAttributes", `{"BackupId":"backup-ro5c4er4aac","NeverExpires":true}`},
		{"modify cluster", "ModifyCluster", `{"ClusterId":"cluster-igklspoyj5v","HsmType":"hsm2m.medium","BackupRetentionPolicy":{"Type":"DAYS","Value":"379"}}`},
		{"copy backup", "CopyBackupToRegion", `{"DestinationRegion":"us-west-2","BackupId":"backup-ro5c4er4aac","TagList":[{"Key":"k","Value":"v"}]}`},
		{"delete backup", "DeleteBackup", `{"BackupId":"backup-ro5c4er4aac"}`},
		{"restore backup", "RestoreBackup", `{"BackupId":"backup-ro5c4er4aac"}`},
		{"delete cluster", "DeleteCluster", `{"ClusterId":"cluster-igklspoyj5vabcde"}`},
		{"get policy", "GetResourcePolicy", `{"ResourceArn":"arn:aws:cloudhsm:us-east-1:123456789012:backup/backup-ro5c4er4aac"}`},
		{"get policy no members", "GetResourcePolicy", `{}`},
		{"put policy", "PutResourcePolicy", `{"ResourceArn":"arn:aws:cloudhsm:eu-central-1:123456789012:backup/backup-ro5c4er4aac","Policy":"{\"Version\":\"2012-10-17\",\"Statement\":[]}"}`},
		{"delete policy", "DeleteResourcePolicy", `{"ResourceArn":"arn:aws-us-gov:cloudhsm:us-gov-west-1:123456789012:cluster/cluster-igklspoyj5v"}`},
		{"escaped member value", "DeleteCluster", `{"ClusterId":"cluster-\u0069gklspoyj5v"}`},
		{"escaped member name", "DeleteCluster", `{"\u0043lusterId":"cluster-igklspoyj5v"}`},
		{"unknown members ignored", "DeleteCluster", `{"ClusterId":"cluster-igklspoyj5v","Foo":{"bar":[1,2.5e3,{"x":null}],"s":"\ud83d\ude00"},"clusterId":42}`},
		{"null means absent", "DescribeClusters", `{"Filters":null,"MaxResults":null,"NextToken":null}`},
		{"null optional members", "CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":["subnet-0123456789abcdef0"],"TagList":null,"Mode":null,"BackupRetentionPolicy":null}`},
		{"null member inside a list element", "TagResource", `{"ResourceId":"cluster-igklspoyj5v","TagList":[{"Key":"k","Value":"v","Note":null}]}`},
		{"nulls inside unknown members", "DescribeClusters", `{"Other":[null,{"a":null}],"Filters":{"states":["ACTIVE"]}}`},
		{"null nested member", "ModifyCluster", `{"ClusterId":"cluster-igklspoyj5v","BackupRetentionPolicy":{"Type":null,"Value":null}}`},
		{"depth 32", "DescribeClusters", `{"x":` + strings.Repeat("[", 31) + strings.Repeat("]", 31) + `}`},
		{"negative zero", "DescribeClusters", `{"MaxResults":1,"Other":-0}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := m.Check(tc.op, []byte(tc.body)); err != nil {
				t.Fatalf("Check(%s) = %v", tc.op, err)
			}
		})
	}
}

// Bodies that are not one well-formed JSON object: syntax, the top-level
// type, encoding, duplicate keys and nesting depth.
func TestCheckSerializationErrors(t *testing.T) {
	deep := strings.Repeat("[", 32) + strings.Repeat("]", 32)
	manyKeys := func(dup string) string {
		var b strings.Builder
		b.WriteString(`{`)
		for i := 0; i < 40; i++ {
			fmt.Fprintf(&b, `"k%d":%d,`, i, i)
		}
		b.WriteString(`"` + dup + `":true}`)
		return b.String()
	}
	checkSerializationErrors(t, []serializationCase{
		// Malformed JSON.
		{checkCase{"truncated", "DeleteCluster", `{"ClusterId":`}, "Request body is not valid JSON: unexpected end of input at offset 13"},
		{checkCase{"whitespace-only body", "DescribeClusters", " \n"}, "Request body is not valid JSON: unexpected end of input at offset 2"},
		{checkCase{"trailing comma", "DescribeClusters", `{"MaxResults":1,}`}, "Request body is not valid JSON: unexpected character '}' looking for an object key at offset 16"},
		{checkCase{"single quotes", "DescribeClusters", `{'a':1}`}, "Request body is not valid JSON: unexpected character '\\'' looking for an object key at offset 1"},
		{checkCase{"missing colon", "DescribeClusters", `{"a" 1}`}, "Request body is not valid JSON: unexpected character '1' after object key, expected ':' at offset 5"},
		{checkCase{"leading zero", "DescribeClusters", `{"MaxResults":01}`}, "Request body is not valid JSON: unexpected character '1' after object member, expected ',' or '}' at offset 15"},
		{checkCase{"NaN", "DescribeClusters", `{"MaxResults":NaN}`}, "Request body is not valid JSON: unexpected character 'N' looking for the beginning of a value at offset 14"},
		{checkCase{"bad literal", "DescribeBackups", `{"Shared":tru}`}, "Request body is not valid JSON: invalid literal, expected true at offset 10"},
		{checkCase{"comment", "DescribeClusters", `{/* c */}`}, "Request body is not valid JSON: unexpected character '/' looking for an object key at offset 1"},
		{checkCase{"raw newline in string", "DeleteCluster", "{\"ClusterId\":\"a\nb\"}"}, "Request body is not valid JSON: invalid control character in string at offset 15"},
		{checkCase{"bad escape", "DeleteCluster", `{"ClusterId":"\x41"}`}, "Request body is not valid JSON: invalid escape sequence in string at offset 14"},
		{checkCase{"bad unicode escape", "DeleteCluster", `{"ClusterId":"\u12G4"}`}, "Request body is not valid JSON: invalid \\u escape in string at offset 16"},
		{checkCase{"unterminated string", "DeleteCluster", `{"ClusterId":"abc`}, "Request body is not valid JSON: unexpected end of input in string at offset 17"},
		{checkCase{"bad fraction", "DescribeClusters", `{"MaxResults":1.}`}, "Request body is not valid JSON: invalid number: expected a digit after the decimal point at offset 16"},
		{checkCase{"bad exponent", "DescribeClusters", `{"MaxResults":1e}`}, "Request body is not valid JSON: invalid number: expected a digit in the exponent at offset 16"},
		{checkCase{"unclosed array", "CreateCluster", `{"SubnetIds":["a"`}, "Request body is not valid JSON: unexpected end of input in array at offset 17"},
		{checkCase{"array separator", "CreateCluster", `{"SubnetIds":["a" "b"]}`}, "Request body is not valid JSON: unexpected character '\"' after array element, expected ',' or ']' at offset 18"},
		{checkCase{"trailing data", "DescribeClusters", `{} {}`}, "Request body is not valid JSON: unexpected data after the top-level value at offset 3"},
		{checkCase{"trailing garbage", "DescribeClusters", `{}x`}, "Request body is not valid JSON: unexpected data after the top-level value at offset 2"},
		{checkCase{"invalid json wins over validation", "DeleteCluster", `{"ClusterId":"abc","x":[1,]}`}, "Request body is not valid JSON: unexpected character ']' looking for the beginning of a value at offset 26"},
		// Not a single object.
		{checkCase{"array body", "DescribeClusters", `[]`}, "Request body must be a JSON object but is an array"},
		{checkCase{"string body", "DescribeClusters", `"{}"`}, "Request body must be a JSON object but is a string"},
		{checkCase{"null body", "DescribeClusters", `null`}, "Request body must be a JSON object but is null"},
		{checkCase{"number body", "DescribeClusters", ` 42 `}, "Request body must be a JSON object but is a number"},
		// Encoding.
		{checkCase{"invalid utf-8", "DeleteCluster", "{\"ClusterId\":\"\xff\"}"}, "Request body is not valid UTF-8"},
		{checkCase{"utf-8 BOM", "DescribeClusters", "\ufeff{}"}, "Request body is not valid JSON: unexpected character '\\ufeff' looking for the beginning of a value at offset 0"},
		// Duplicates.
		{checkCase{"duplicate member", "CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":["subnet-0123456789abcdef0"],"HsmType":"hsm1.medium"}`}, "Duplicate key 'HsmType' in JSON object"},
		{checkCase{"duplicate via escape", "DeleteCluster", `{"ClusterId":"cluster-igklspoyj5v","Cluster\u0049d":"x"}`}, "Duplicate key 'ClusterId' in JSON object"},
		{checkCase{"duplicate in unknown member", "DescribeClusters", `{"x":[{"a":1,"b":2,"a":3}]}`}, "Duplicate key 'a' in JSON object"},
		{checkCase{"duplicate in map", "DescribeClusters", `{"Filters":{"states":["ACTIVE"],"states":[]}}`}, "Duplicate key 'states' in JSON object"},
		{checkCase{"duplicate in big object", "DescribeClusters", manyKeys("k17")}, "Duplicate key 'k17' in JSON object"},
		// Depth.
		{checkCase{"depth 33", "DescribeClusters", `{"x":` + deep + `}`}, "Request body nests JSON arrays and objects deeper than 32 levels"},
		{checkCase{"very deep", "DescribeClusters", strings.Repeat(`{"a":`, 100000)}, "Request body nests JSON arrays and objects deeper than 32 levels"},
	})
}

// Members whose JSON type is not their shape's.
func TestCheckTypeErrors(t *testing.T) {
	checkSerializationErrors(t, []serializationCase{
		{checkCase{"string given number", "DeleteCluster", `{"ClusterId":42}`}, "Expected a JSON string for member 'ClusterId' but found a number"},
		{checkCase{"string given bool", "DeleteCluster", `{"ClusterId":true}`}, "Expected a JSON string for member 'ClusterId' but found a boolean"},
		{checkCase{"string given object", "DeleteCluster", `{"ClusterId":{}}`}, "Expected a JSON string for member 'ClusterId' but found an object"},
		{checkCase{"string given array", "DeleteCluster", `{"ClusterId":["cluster-igklspoyj5v"]}`}, "Expected a JSON string for member 'ClusterId' but found an array"},
		{checkCase{"integer given string", "DescribeClusters", `{"MaxResults":"10"}`}, "Expected an integer for member 'MaxResults' but found a string"},
		{checkCase{"integer given fraction", "DescribeClusters", `{"MaxResults":1.5}`}, "Expected an integer for member 'MaxResults' but found the number 1.5"},
		{checkCase{"integer given exponent", "DescribeClusters", `{"MaxResults":1e1}`}, "Expected an integer for member 'MaxResults' but found the number 1e1"},
		{checkCase{"integer given 1.0", "ListTags", `{"ResourceId":"cluster-igklspoyj5v","MaxResults":1.0}`}, "Expected an integer for member 'MaxResults' but found the number 1.0"},
		{checkCase{"integer above int32", "DescribeClusters", `{"MaxResults":2147483648}`}, "Number 2147483648 for member 'MaxResults' is out of range for a 32-bit integer"},
		{checkCase{"integer below int32", "DescribeClusters", `{"MaxResults":-2147483649}`}, "Number -2147483649 for member 'MaxResults' is out of range for a 32-bit integer"},
		{checkCase{"integer huge", "DescribeClusters", `{"MaxResults":123456789012345678901234567890}`}, "Number 123456789012345678901234567890 for member 'MaxResults' is out of range for a 32-bit integer"},
		{checkCase{"boolean given string", "ModifyBackupAttributes", `{"BackupId":"backup-ro5c4er4aac","NeverExpires":"true"}`}, "Expected a JSON boolean for member 'NeverExpires' but found a string"},
		{checkCase{"boolean given number", "DescribeBackups", `{"Shared":1}`}, "Expected a JSON boolean for member 'Shared' but found a number"},
		{checkCase{"list given string", "CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":"subnet-0123456789abcdef0"}`}, "Expected a JSON array for member 'SubnetIds' but found a string"},
		{checkCase{"list given object", "UntagResource", `{"ResourceId":"cluster-igklspoyj5v","TagKeyList":{}}`}, "Expected a JSON array for member 'TagKeyList' but found an object"},
		{checkCase{"list element", "CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":["subnet-0123456789abcdef0",7]}`}, "Expected a JSON string for member 'SubnetIds[1]' but found a number"},
		{checkCase{"map given array", "DescribeClusters", `{"Filters":[]}`}, "Expected a JSON object for member 'Filters' but found an array"},
		{checkCase{"map value given string", "DescribeClusters", `{"Filters":{"states":"ACTIVE"}}`}, "Expected a JSON array for member 'Filters[\"states\"]' but found a string"},
		{checkCase{"map value element", "DescribeClusters", `{"Filters":{"states":["ACTIVE",false]}}`}, "Expected a JSON string for member 'Filters[\"states\"][1]' but found a boolean"},
		{checkCase{"structure given string", "CreateCluster", `{"BackupRetentionPolicy":"DAYS"}`}, "Expected a JSON object for member 'BackupRetentionPolicy' but found a string"},
		{checkCase{"structure in list given string", "TagResource", `{"ResourceId":"cluster-igklspoyj5v","TagList":["k=v"]}`}, "Expected a JSON object for member 'TagList[0]' but found a string"},
		{checkCase{"nested structure member", "TagResource", `{"ResourceId":"cluster-igklspoyj5v","TagList":[{"Key":"a","Value":"b"},{"Key":1,"Value":"b"}]}`}, "Expected a JSON string for member 'TagList[1].Key' but found a number"},
		{checkCase{"retention value as number", "ModifyCluster", `{"ClusterId":"cluster-igklspoyj5v","BackupRetentionPolicy":{"Type":"DAYS","Value":90}}`}, "Expected a JSON string for member 'BackupRetentionPolicy.Value' but found a number"},
		{checkCase{"type error wins over validation", "CreateCluster", `{"HsmType":"x!","SubnetIds":["bad"],"Mode":1}`}, "Expected a JSON string for member 'Mode' but found a number"},
	})
}

// Nulls in lists and maps: none of the model's is sparse.
func TestCheckNullInListOrMap(t *testing.T) {
	checkSerializationErrors(t, []serializationCase{
		{checkCase{"null in a list", "CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":[null]}`}, "Member 'SubnetIds' holds null at index 0: a list in a request cannot contain null; remove the element" + nullNote},
		{checkCase{"null after elements", "UntagResource", `{"ResourceId":"cluster-igklspoyj5v","TagKeyList":["a","b",null]}`}, "Member 'TagKeyList' holds null at index 2: a list in a request cannot contain null; remove the element" + nullNote},
		{checkCase{"null tag", "TagResource", `{"ResourceId":"cluster-igklspoyj5v","TagList":[{"Key":"a","Value":"b"},null]}`}, "Member 'TagList' holds null at index 1: a list in a request cannot contain null; remove the element" + nullNote},
		{checkCase{"null filter value element", "DescribeClusters", `{"Filters":{"clusterIds":[null]}}`}, "Member 'Filters[\"clusterIds\"]' holds null at index 0: a list in a request cannot contain null; remove the element" + nullNote},
		{checkCase{"null filter value", "DescribeBackups", `{"Filters":{"states":["READY"],"clusterIds":null}}`}, "Member 'Filters' holds null for key \"clusterIds\": a map in a request cannot contain null values; remove the entry" + nullNote},
		{checkCase{"null wins over validation", "CreateCluster", `{"HsmType":"x!","SubnetIds":["bad",null]}`}, "Member 'SubnetIds' holds null at index 1: a list in a request cannot contain null; remove the element" + nullNote},
		{checkCase{"type error before a null", "CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":[[],null]}`}, "Expected a JSON string for member 'SubnetIds[0]' but found an array"},
	})
}

type serializationCase struct {
	checkCase
	want string // the exact message
}

func checkSerializationErrors(t *testing.T, cases []serializationCase) {
	t.Helper()
	m := mustLoad(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := m.Check(tc.op, []byte(tc.body))
			var se *SerializationError
			if !errors.As(err, &se) {
				t.Fatalf("Check(%s, %q) = %#v, want *SerializationError", tc.op, tc.body, err)
			}
			if se.Error() != se.Message {
				t.Errorf("Error() %q != Message %q", se.Error(), se.Message)
			}
			if se.Message != tc.want {
				t.Errorf("message\n got: %s\nwant: %s", se.Message, tc.want)
			}
		})
	}
}

// Violations of a member's own constraints: required, pattern, length,
// enum, integer bounds.
func TestCheckValidationErrors(t *testing.T) {
	long := strings.Repeat("a", 257)

	checkViolations(t, []validationCase{
		{checkCase{"brief example", "DeleteCluster", `{"ClusterId":"abc"}`},
			[]string{rule("'abc'", "clusterId", "Member must satisfy regular expression pattern: "+clusterIDPat)}},
		{checkCase{"required missing", "DeleteCluster", `{}`},
			[]string{rule("null", "clusterId", "Member must not be null")}},
		{checkCase{"required missing empty body", "DeleteCluster", ``},
			[]string{rule("null", "clusterId", "Member must not be null")}},
		{checkCase{"required null", "DeleteCluster", `{"ClusterId":null}`},
			[]string{rule("null", "clusterId", "Member must not be null")}},
		{checkCase{"required case-sensitive name", "DeleteCluster", `{"clusterId":"cluster-igklspoyj5v"}`},
			[]string{rule("null", "clusterId", "Member must not be null")}},
		{checkCase{"two required missing", "CreateCluster", `{}`},
			[]string{rule("null", "hsmType", "Member must not be null"), rule("null", "subnetIds", "Member must not be null")}},
		{checkCase{"three required", "InitializeCluster", `{"TrustAnchor":"x","Junk":1}`},
			[]string{rule("null", "clusterId", "Member must not be null"), rule("null", "signedCert", "Member must not be null")}},
		{checkCase{"pattern anchored at end", "DeleteCluster", `{"ClusterId":"cluster-igklspoyj5v "}`},
			[]string{rule("'cluster-igklspoyj5v '", "clusterId", "Member must satisfy regular expression pattern: "+clusterIDPat)}},
		{checkCase{"pattern anchored at start", "DeleteBackup", `{"BackupId":"xbackup-ro5c4er4aac"}`},
			[]string{rule("'xbackup-ro5c4er4aac'", "backupId", "Member must satisfy regular expression pattern: backup-[2-7a-zA-Z]{11,16}")}},
		{checkCase{"pattern too many repetitions", "DeleteCluster", `{"ClusterId":"cluster-aaaaaaaaaaaaaaaaa"}`},
			[]string{rule("'cluster-aaaaaaaaaaaaaaaaa'", "clusterId", "Member must satisfy regular expression pattern: "+clusterIDPat)}},
		{checkCase{"string max length", "ModifyCluster", `{"ClusterId":"cluster-igklspoyj5v","HsmType":"hsm2m.mediummmmmmmmmmmmmmmmmmmmmm"}`},
			[]string{rule("'hsm2m.mediummmmmmmmmmmmmmmmmmmmmm'", "hsmType", "Member must have length less than or equal to 32")}},
		{checkCase{"string min length", "PutResourcePolicy", `{"ResourceArn":"arn:aws:cloudhsm:us-east-1:123456789012:backup/backup-ro5c4er4aac","Policy":""}`},
			[]string{rule("''", "policy", "Member must have length greater than or equal to 1")}},
		{checkCase{"length and pattern both fail", "ModifyCluster", `{"ClusterId":"cluster-igklspoyj5v","BackupRetentionPolicy":{"Type":"DAYS","Value":"abcd"}}`},
			[]string{
				rule("'abcd'", "backupRetentionPolicy.value", "Member must have length less than or equal to 3"),
				rule("'abcd'", "backupRetentionPolicy.value", "Member must satisfy regular expression pattern: [0-9]+"),
			}},
		{checkCase{"min length and plus pattern", "ModifyCluster", `{"ClusterId":"cluster-igklspoyj5v","BackupRetentionPolicy":{"Value":""}}`},
			[]string{
				rule("''", "backupRetentionPolicy.value", "Member must have length greater than or equal to 1"),
				rule("''", "backupRetentionPolicy.value", "Member must satisfy regular expression pattern: [0-9]+"),
			}},
		{checkCase{"enum", "CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":["subnet-0123456789abcdef0"],"Mode":"fips"}`},
			[]string{rule("'fips'", "mode", "Member must satisfy enum value set: [FIPS, NON_FIPS]")}},
		{checkCase{"enum single value", "ModifyCluster", `{"ClusterId":"cluster-igklspoyj5v","BackupRetentionPolicy":{"Type":"WEEKS"}}`},
			[]string{rule("'WEEKS'", "backupRetentionPolicy.type", "Member must satisfy enum value set: [DAYS]")}},
		{checkCase{"integer max", "DescribeClusters", `{"MaxResults":26}`},
			[]string{rule("'26'", "maxResults", "Member must have value less than or equal to 25")}},
		{checkCase{"integer min", "DescribeClusters", `{"MaxResults":0}`},
			[]string{rule("'0'", "maxResults", "Member must have value greater than or equal to 1")}},
		{checkCase{"integer negative", "DescribeBackups", `{"MaxResults":-5}`},
			[]string{rule("'-5'", "maxResults", "Member must have value greater than or equal to 1")}},
		{checkCase{"integer negative zero", "ListTags", `{"ResourceId":"cluster-igklspoyj5v","MaxResults":-0}`},
			[]string{rule("'0'", "maxResults", "Member must have value greater than or equal to 1")}},
		{checkCase{"next token too long", "DescribeClusters", `{"NextToken":"` + long + `"}`},
			[]string{rule("'"+long[:256]+"...'", "nextToken", "Member must have length less than or equal to 256")}},
		{checkCase{"java dot excludes CR", "DescribeClusters", `{"NextToken":"a\rb"}`},
			[]string{rule("'a\rb'", "nextToken", "Member must satisfy regular expression pattern: .*")}},
		{checkCase{"java dot excludes LINE SEPARATOR", "DescribeClusters", `{"NextToken":"a\u2028b"}`},
			[]string{rule("'a\u2028b'", "nextToken", "Member must satisfy regular expression pattern: .*")}},
		{checkCase{"cert pattern", "InitializeCluster", `{"ClusterId":"cluster-igklspoyj5v","SignedCert":"-----BEGIN CERT-----\n***\n","TrustAnchor":"ok"}`},
			[]string{rule("'-----BEGIN CERT-----\n***\n'", "signedCert", `Member must satisfy regular expression pattern: [a-zA-Z0-9+-/=\s]*`)}},
		{checkCase{"region pattern", "CopyBackupToRegion", `{"DestinationRegion":"us-west-2a","BackupId":"backup-ro5c4er4aac"}`},
			[]string{rule("'us-west-2a'", "destinationRegion", `Member must satisfy regular expression pattern: [a-z]{2}(-(gov))?-(east|west|north|south|central){1,2}-\d`)}},
		{checkCase{"arn pattern", "GetResourcePolicy", `{"ResourceArn":"arn:aws:cloudhsm:us-east-1:12345678901:backup/backup-ro5c4er4aac"}`},
			[]string{rule("'arn:aws:cloudhsm:us-east-1:12345678901:backup/backup-ro5c4er4aac'", "resourceArn", `Member must satisfy regular expression pattern: arn:aws(-(us-gov))?:cloudhsm:([a-z]{2}(-(gov|isob|iso))?-(east|west|north|south|central){1,2}-[0-9]{1}):[0-9]{12}:(backup/backup|cluster/cluster|hsm/hsm)-[2-7a-zA-Z]{11,16}`)}},
		{checkCase{"ip pattern", "DeleteHsm", `{"ClusterId":"cluster-igklspoyj5v","EniIp":"10.0.0"}`},
			[]string{rule("'10.0.0'", "eniIp", `Member must satisfy regular expression pattern: \d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}`)}},
	})
}

// Violations of lists and maps, and of the members of their elements, with
// AWS's paths (tagList.2.member.key).
func TestCheckValidationErrorsInListsAndMaps(t *testing.T) {
	subnets := func(n int) (list, rendered string) {
		var ids []string
		for i := 0; i < n; i++ {
			ids = append(ids, fmt.Sprintf("subnet-%08x", i))
		}
		b, _ := json.Marshal(ids)
		return string(b), "[" + strings.Join(ids, ", ") + "]"
	}
	elevenJSON, elevenRendered := subnets(11)
	long := strings.Repeat("a", 257)
	tags51 := func() string {
		var tags []string
		for i := 0; i < 51; i++ {
			tags = append(tags, fmt.Sprintf(`{"Key":"k%d","Value":"v"}`, i))
		}
		return "[" + strings.Join(tags, ",") + "]"
	}()
	filters31 := func() string {
		var kv []string
		for i := 0; i < 31; i++ {
			kv = append(kv, fmt.Sprintf(`"f%02d":["x"]`, i))
		}
		return "{" + strings.Join(kv, ",") + "}"
	}()
	// Java-like rendering of filters31, cut at 256 characters.
	filters31Rendered := func() string {
		var kv []string
		for i := 0; i < 31; i++ {
			kv = append(kv, fmt.Sprintf("f%02d=[x]", i))
		}
		s := "{" + strings.Join(kv, ", ") + "}"
		return s[:256] + "..."
	}()

	checkViolations(t, []validationCase{
		{checkCase{"list too short", "CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":[]}`},
			[]string{rule("'[]'", "subnetIds", "Member must have length greater than or equal to 1")}},
		{checkCase{"list too long", "CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":` + elevenJSON + `}`},
			[]string{rule("'"+elevenRendered+"'", "subnetIds", "Member must have length less than or equal to 10")}},
		{checkCase{"list element pattern", "CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":["subnet-0123456789abcdef0","sub-1"]}`},
			[]string{rule("'sub-1'", "subnetIds.2.member", "Member must satisfy regular expression pattern: "+subnetPattern)}},
		{checkCase{"string list element length", "UntagResource", `{"ResourceId":"cluster-igklspoyj5v","TagKeyList":["ok",""]}`},
			[]string{rule("''", "tagKeyList.2.member", "Member must have length greater than or equal to 1")}},
		{checkCase{"nested path", "TagResource", `{"ResourceId":"cluster-igklspoyj5v","TagList":[{"Key":"ok","Value":"ok"},{"Key":"bad!","Value":"ok"}]}`},
			[]string{rule("'bad!'", "tagList.2.member.key", "Member must satisfy regular expression pattern: "+tagPattern)}},
		{checkCase{"nested required", "TagResource", `{"ResourceId":"cluster-igklspoyj5v","TagList":[{"Key":"k"},{"Value":"v","Key":null}]}`},
			[]string{
				rule("null", "tagList.1.member.value", "Member must not be null"),
				rule("null", "tagList.2.member.key", "Member must not be null"),
			}},
		{checkCase{"tag key empty", "TagResource", `{"ResourceId":"cluster-igklspoyj5v","TagList":[{"Key":"","Value":""}]}`},
			[]string{rule("''", "tagList.1.member.key", "Member must have length greater than or equal to 1")}},
		{checkCase{"tag key 129", "TagResource", `{"ResourceId":"cluster-igklspoyj5v","TagList":[{"Key":"` + strings.Repeat("é", 129) + `","Value":""}]}`},
			[]string{rule("'"+strings.Repeat("é", 129)+"'", "tagList.1.member.key", "Member must have length less than or equal to 128")}},
		{checkCase{"long value is cut", "TagResource", `{"ResourceId":"cluster-igklspoyj5v","TagList":[{"Key":"k","Value":"` + long + `"}]}`},
			[]string{rule("'"+long[:256]+"...'", "tagList.1.member.value", "Member must have length less than or equal to 256")}},
		{checkCase{"tag value control character", "TagResource", `{"ResourceId":"cluster-igklspoyj5v","TagList":[{"Key":"k","Value":"a\tb"}]}`},
			[]string{rule("'a\tb'", "tagList.1.member.value", "Member must satisfy regular expression pattern: "+tagPattern)}},
		{checkCase{"tag list too long", "TagResource", `{"ResourceId":"cluster-igklspoyj5v","TagList":` + tags51 + `}`},
			[]string{rule("'"+truncateString("[{Key: k0,Value: v}, {Key: k1,Value: v}, {Key: k2,Value: v}, {Key: k3,Value: v}, {Key: k4,Value: v}, {Key: k5,Value: v}, {Key: k6,Value: v}, {Key: k7,Value: v}, {Key: k8,Value: v}, {Key: k9,Value: v}, {Key: k10,Value: v}, {Key: k11,Value: v}, {Key: k12,Value: v}, {Key: k13,Value: v}")+"'", "tagList", "Member must have length less than or equal to 50")}},
		{checkCase{"tag list empty", "CopyBackupToRegion", `{"DestinationRegion":"us-west-2","BackupId":"backup-ro5c4er4aac","TagList":[]}`},
			[]string{rule("'[]'", "tagList", "Member must have length greater than or equal to 1")}},
		{checkCase{"map keys", "DescribeClusters", `{"Filters":{"states":["ACTIVE"],"bad key":["a","b"],"":[]}}`},
			[]string{rule("'{states=[ACTIVE], bad key=[a, b], =[]}'", "filters", "Map keys must satisfy constraint: [Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+]")}},
		{checkCase{"map too big", "DescribeClusters", `{"Filters":` + filters31 + `}`},
			[]string{rule("'"+filters31Rendered+"'", "filters", "Member must have length less than or equal to 30")}},
	})
}

// Violations are reported in the model's declaration order, a list's own
// before its elements', whatever the order of the JSON.
func TestCheckValidationErrorOrder(t *testing.T) {
	checkViolations(t, []validationCase{
		{checkCase{"declared order, not JSON order", "CreateCluster", `{"Mode":"X","TagList":[{"Key":"k!","Value":"v"}],"NetworkType":"IPV6","SubnetIds":["s"],"SourceBackupId":"b","HsmType":"h","BackupRetentionPolicy":{"Value":"1000","Type":"D"}}`},
			[]string{
				rule("'D'", "backupRetentionPolicy.type", "Member must satisfy enum value set: [DAYS]"),
				rule("'1000'", "backupRetentionPolicy.value", "Member must have length less than or equal to 3"),
				rule("'h'", "hsmType", `Member must satisfy regular expression pattern: ((p|)hsm[0-9][a-z.]*\.[a-zA-Z]+)`),
				rule("'b'", "sourceBackupId", `Member must satisfy regular expression pattern: ^(arn:aws(-(us-gov))?:cloudhsm:([a-z]{2}(-(gov|isob|iso))?-(east|west|north|south|central){1,2}-[0-9]{1}):[0-9]{12}:backup/)?backup-[2-7a-zA-Z]{11,16}`),
				rule("'s'", "subnetIds.1.member", "Member must satisfy regular expression pattern: "+subnetPattern),
				rule("'IPV6'", "networkType", "Member must satisfy enum value set: [IPV4, DUALSTACK]"),
				rule("'k!'", "tagList.1.member.key", "Member must satisfy regular expression pattern: "+tagPattern),
				rule("'X'", "mode", "Member must satisfy enum value set: [FIPS, NON_FIPS]"),
			}},
		{checkCase{"list-level before elements", "UntagResource", `{"ResourceId":"nope","TagKeyList":[]}`},
			[]string{
				rule("'nope'", "resourceId", "Member must satisfy regular expression pattern: (?:cluster|backup)-[2-7a-zA-Z]{11,16}"),
				rule("'[]'", "tagKeyList", "Member must have length greater than or equal to 1"),
			}},
		{checkCase{"unknown members ignored", "DeleteCluster", `{"ClusterId":"abc","Unknown":{"deep":[1,"x",null,{"y":true}]},"ClusterID":"x"}`},
			[]string{rule("'abc'", "clusterId", "Member must satisfy regular expression pattern: "+clusterIDPat)}},
	})
}

// Constraint texts shared by the validation tests.
const (
	tagPattern    = `^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$`
	clusterIDPat  = `cluster-[2-7a-zA-Z]{11,16}`
	subnetPattern = `subnet-[0-9a-fA-F]{8,17}`
)

// rule renders one violation as AWS words it.
func rule(value, path, constraint string) string {
	return "Value " + value + " at '" + path + "' failed to satisfy constraint: " + constraint
}

type validationCase struct {
	checkCase
	want []string // violation messages, in order
}

func checkViolations(t *testing.T, cases []validationCase) {
	t.Helper()
	m := mustLoad(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := m.Check(tc.op, []byte(tc.body))
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Check(%s, %q) = %#v, want *ValidationError", tc.op, tc.body, err)
			}
			var got []string
			for _, v := range ve.Violations {
				got = append(got, v.Message)
				if !strings.Contains(v.Message, " at '"+v.Path+"' failed to satisfy constraint: ") {
					t.Errorf("Path %q not in message %q", v.Path, v.Message)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("violations\n got: %q\nwant: %q", got, tc.want)
			}
		})
	}
}

// truncateString cuts s like rendered values are cut.
func truncateString(s string) string {
	if utf8.RuneCountInString(s) <= maxRendered {
		return s
	}
	return string([]rune(s)[:maxRendered]) + "..."
}

func TestValidationErrorText(t *testing.T) {
	m := mustLoad(t)
	err := m.Check("DeleteCluster", []byte(`{"ClusterId":"abc"}`))
	const want = "1 validation error detected: Value 'abc' at 'clusterId' failed to satisfy constraint: Member must satisfy regular expression pattern: cluster-[2-7a-zA-Z]{11,16}"
	if err == nil || err.Error() != want {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
	err = m.Check("CreateCluster", []byte(`{"SubnetIds":["x"]}`))
	const want2 = "2 validation errors detected: Value null at 'hsmType' failed to satisfy constraint: Member must not be null; " +
		"Value 'x' at 'subnetIds.1.member' failed to satisfy constraint: Member must satisfy regular expression pattern: subnet-[0-9a-fA-F]{8,17}"
	if err == nil || err.Error() != want2 {
		t.Fatalf("got  %v\nwant %s", err, want2)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Violations[0].Path != "hsmType" || ve.Violations[1].Path != "subnetIds.1.member" {
		t.Fatalf("paths: %#v", err)
	}
}

func TestRenderingCutsLongValues(t *testing.T) {
	m := mustLoad(t)
	// A 20000-character invalid certificate: the message must stay short.
	cert := strings.Repeat("é", 20001)
	err := m.Check("InitializeCluster", []byte(`{"ClusterId":"cluster-igklspoyj5v","SignedCert":"`+cert+`","TrustAnchor":"x"}`))
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Violations) != 2 {
		t.Fatalf("got %v", err)
	}
	wantValue := "Value '" + strings.Repeat("é", 256) + "...' at 'signedCert'"
	for _, v := range ve.Violations {
		if !strings.HasPrefix(v.Message, wantValue) {
			t.Errorf("message not cut: %.300q", v.Message)
		}
	}
	if ve.Violations[0].Message != wantValue+" failed to satisfy constraint: Member must have length less than or equal to 20000" {
		t.Errorf("got %q", ve.Violations[0].Message)
	}
	// A huge map key in a serialization error is cut as well.
	key := strings.Repeat("k", 5000)
	err = m.Check("DescribeClusters", []byte(`{"Filters":{"`+key+`":"x"}}`))
	if err == nil || len(err.Error()) > 400 {
		t.Errorf("serialization message too long: %d", len(err.Error()))
	}
}

func TestJavaRegexTranslation(t *testing.T) {
	for _, tc := range []struct {
		pattern string
		match   []string
		noMatch []string
	}{
		{`.*`, []string{"", "abc", "a\tb", "\u00a0"}, []string{"\n", "a\rb", "\u0085", "\u2028", "\u2029"}},
		{`[a-z\s]*`, []string{"a b", "a\x0bb", "\t\n\f\r"}, []string{"A", "\u00a0"}},
		{`x\sy`, []string{"x\x0by", "x y"}, []string{"xy", "x\u00a0y"}},
		{`\S+`, []string{"abc"}, []string{"a b", "\x0b"}},
		{`[.]`, []string{"."}, []string{"a"}},
		{`\.`, []string{"."}, []string{"a"}},
		{`\u0041+`, []string{"AA"}, []string{"a"}},
		{`^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$`, []string{"", "Ünï cödé", "١٢٣", "a\u00a0b", "x\u2028y"}, []string{"a!b", "a\tb", "a\nb", "😀"}},
		{`[a-zA-Z0-9+-/=\s]*`, []string{"+,-./=", "MII\nA==\r\n"}, []string{"*", "_"}},
		{`[0-9]+`, []string{"0", "379"}, []string{"", "1a", "٣"}},
	} {
		mt, err := compileJavaPattern(tc.pattern)
		if err != nil {
			t.Fatalf("%s: %v", tc.pattern, err)
		}
		for _, s := range tc.match {
			if !mt.match([]byte(s)) || !mt.re.MatchString(s) {
				t.Errorf("%s: %q should match", tc.pattern, s)
			}
		}
		for _, s := range tc.noMatch {
			if mt.match([]byte(s)) || mt.re.MatchString(s) {
				t.Errorf("%s: %q should not match", tc.pattern, s)
			}
		}
	}
	for _, bad := range []string{`\Qx\E`, `[a[b]]`, `[abc`, `\`, `a\Z`, `\u12`, `\v`} {
		if _, err := compileJavaPattern(bad); err == nil {
			t.Errorf("%q: expected an error", bad)
		}
	}
}

// TestClassMatcherCoverage checks which model patterns take the fast path
// and that it agrees with the regexp on interesting strings.
func TestClassMatcherCoverage(t *testing.T) {
	m := mustLoad(t)
	fast := map[string]bool{}
	for name, s := range m.shapes {
		if s.re == nil {
			continue
		}
		if s.re.class != nil {
			fast[name] = true
		}
		for _, v := range patternProbes {
			if got, want := s.re.match([]byte(v)), s.re.re.MatchString(v); got != want {
				t.Errorf("%s (%s): match(%q) = %v, regexp says %v", name, s.pattern, v, got, want)
			}
		}
	}
	for _, name := range []string{"TagKey", "TagValue", "Cert", "NextToken", "Field", "BackupRetentionValue"} {
		if !fast[name] {
			t.Errorf("%s: expected the character-class fast path", name)
		}
	}
	if fast["ClusterId"] || fast["HsmType"] {
		t.Error("fast path used for a non-class pattern")
	}
}

var patternProbes = []string{
	"", " ", "a", "0", "379", "1000", "-", "_", "a-b_c", "a b", "a\tb", "a\nb", "a\rb", "a\x0bb",
	"\u0085", "\u2028", "\u00a0", "Ü", "日本", "😀", "١٢٣", "+/=", "*", "!",
	"cluster-igklspoyj5v", "hsm2m.medium", "subnet-0123456789abcdef0", "us-east-1a", "10.0.0.1",
	"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n", "\xff",
}

func TestConcurrentCheck(t *testing.T) {
	m := mustLoad(t)
	bodies := []struct {
		op, body string
	}{
		{"CreateCluster", `{"HsmType":"hsm2m.medium","SubnetIds":["subnet-0123456789abcdef0"]}`},
		{"DeleteCluster", `{"ClusterId":"abc"}`},
		{"DescribeClusters", `{"Filters":{"bad key":["x"]}}`},
		{"TagResource", `{"a":1,"a":2}`},
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				b := bodies[(g+i)%len(bodies)]
				_ = m.Check(b.op, []byte(b.body))
			}
		}()
	}
	wg.Wait()
}

// fuzzSeeds are bodies for FuzzCheck's seed corpus.
var fuzzSeeds = []string{
	``, `{}`, `[]`, `null`, `{"a":1,"a":2}`, `{"x":[[[[[[[[[[]]]]]]]]]]}`,
	`{"HsmType":"hsm2m.medium","SubnetIds":["subnet-0123456789abcdef0"]}`,
	`{"HsmType":"x","SubnetIds":[],"TagList":[{"Key":"","Value":null}],"BackupRetentionPolicy":{"Type":"X","Value":"abcd"},"Mode":"FIPS"}`,
	`{"ClusterId":"abc"}`, `{"ClusterId":42}`, `{"ClusterId":"cluster-\u0069gklspoyj5v"}`,
	`{"Filters":{"clusterIds":["cluster-igklspoyj5v"],"bad key":["a",null]},"MaxResults":26,"NextToken":"a\rb"}`,
	`{"MaxResults":1.5}`, `{"MaxResults":99999999999}`, `{"Shared":"true","SortAscending":null}`,
	`{"ResourceId":"cluster-igklspoyj5v","TagList":[{"Key":"Ünïcödé","Value":"日本語"}]}`,
	`{"ResourceId":"cluster-igklspoyj5v","TagKeyList":["a",""]}`,
	`{"ClusterId":"cluster-igklspoyj5v","SignedCert":"\ud800","TrustAnchor":"\ud83d\ude00"}`,
	"{\"ClusterId\":\"\xff\"}", `{"x":"\u0000"}`, `{} {}`, `{"a":}`,
}

func FuzzCheck(f *testing.F) {
	m := mustLoad(f)
	ops := m.Operations()
	for i, s := range fuzzSeeds {
		for j := range ops {
			if (i+j)%5 == 0 {
				f.Add(byte(j), []byte(s))
			}
		}
	}
	f.Fuzz(func(t *testing.T, opByte byte, body []byte) {
		op := ops[int(opByte)%len(ops)]
		err := m.Check(op, body)
		blank := len(body) == 0
		switch e := err.(type) {
		case nil:
			if !blank && !json.Valid(body) {
				t.Fatalf("accepted invalid JSON %q", body)
			}
		case *SerializationError:
			if e.Message == "" {
				t.Fatal("empty serialization message")
			}
		case *ValidationError:
			if !blank && !json.Valid(body) {
				t.Fatalf("validated invalid JSON %q", body)
			}
			if len(e.Violations) == 0 {
				t.Fatal("ValidationError without violations")
			}
			for _, v := range e.Violations {
				if !strings.HasPrefix(v.Message, "Value ") || !strings.Contains(v.Message, " at '"+v.Path+"' failed to satisfy constraint: Member must ") &&
					!strings.Contains(v.Message, " at '"+v.Path+"' failed to satisfy constraint: Map keys must ") {
					t.Fatalf("malformed violation %+v", v)
				}
			}
			_ = e.Error()
		default:
			t.Fatalf("unexpected error type %T: %v", err, err)
		}
		if !utf8.Valid(body) && err == nil {
			t.Fatalf("accepted invalid UTF-8 %q", body)
		}
	})
}

// FuzzPatternMatch checks the character-class fast path against the
// regexp it replaces, for every pattern of the model.
func FuzzPatternMatch(f *testing.F) {
	m := mustLoad(f)
	var shapes []*shape
	for _, s := range m.shapes {
		if s.re != nil && s.re.class != nil {
			shapes = append(shapes, s)
		}
	}
	for _, p := range patternProbes {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, v string) {
		for _, s := range shapes {
			if got, want := s.re.class.match([]byte(v)), s.re.re.MatchString(v); got != want && utf8.ValidString(v) {
				t.Fatalf("%s: class.match(%q) = %v, regexp %v", s.name, v, got, want)
			}
		}
	})
}

func BenchmarkCheckDescribeClusters(b *testing.B) {
	m := mustLoad(b)
	body := []byte(`{"Filters":{"clusterIds":["cluster-igklspoyj5v"],"states":["ACTIVE","UNINITIALIZED"]},"MaxResults":25,"NextToken":"abc"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := m.Check("DescribeClusters", body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckDescribeClustersEmpty(b *testing.B) {
	m := mustLoad(b)
	body := []byte(`{}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Check("DescribeClusters", body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckCreateCluster(b *testing.B) {
	m := mustLoad(b)
	body := []byte(`{"HsmType":"hsm2m.medium","SubnetIds":["subnet-0123456789abcdef0","subnet-0123456789abcdef1"],"Mode":"FIPS","BackupRetentionPolicy":{"Type":"DAYS","Value":"90"},"TagList":[{"Key":"Name","Value":"my cluster"},{"Key":"env","Value":"prod"}]}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if err := m.Check("CreateCluster", body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckCreateClusterInvalid(b *testing.B) {
	m := mustLoad(b)
	body := []byte(`{"HsmType":"x","SubnetIds":["bad"],"TagList":[{"Key":"bad!","Value":"v"}]}`)
	b.ReportAllocs()
	for b.Loop() {
		if err := m.Check("CreateCluster", body); err == nil {
			b.Fatal("expected an error")
		}
	}
}

// TestValidateKnownMembers checks the report that lets handlers decode with
// encoding/json: only bodies whose every member name is declared, exactly,
// at every depth, are reported as such.
func TestValidateKnownMembers(t *testing.T) {
	m := mustLoad(t)
	for _, tc := range []struct {
		op, body string
		known    bool
	}{
		{"DescribeClusters", ``, true},
		{"DescribeClusters", `{}`, true},
		{"DescribeClusters", `{"MaxResults": 25, "Filters": {"anything-goes": ["x"]}}`, true},
		{"DescribeClusters", `{"maxresults": 25}`, false},
		{"DescribeClusters", `{"MaxResults": 25, "Extra": null}`, false},
		{"DescribeClusters", `{"MaxResults": null}`, true},
		{"TagResource", `{"ResourceId": "cluster-abcdefghijk", "TagList": [{"Key": "a", "Value": "b"}]}`, true},
		{"TagResource", `{"ResourceId": "cluster-abcdefghijk", "TagList": [{"Key": "a", "Value": "b", "value": "c"}]}`, false},
		{"TagResource", `{"ResourceId": "cluster-abcdefghijk", "TagList": [{"Key": "a", "Value": "b", "Extra": null}]}`, false},
	} {
		known, err := m.Validate(tc.op, []byte(tc.body))
		if err != nil {
			t.Errorf("%s %s: %v", tc.op, tc.body, err)
			continue
		}
		if known != tc.known {
			t.Errorf("%s %s: knownMembers = %v, want %v", tc.op, tc.body, known, tc.known)
		}
	}
	// A refused body reports nothing known.
	if known, err := m.Validate("DescribeClusters", []byte(`{"MaxResults": 0}`)); err == nil || known {
		t.Errorf("invalid body: known=%v err=%v", known, err)
	}
}

// nullSite is a body that puts a null directly inside one list or map of
// an operation's input, and the path of that collection.
type nullSite struct {
	op, body, path string
}

// nullSites finds every list and map reachable from shape s, at any depth,
// and builds for each a body holding null in it; wrap puts a value where s
// sits in the body, and path is s's JSON path.
func nullSites(op string, s *shape, wrap func(string) string, path string, depth int) []nullSite {
	if depth > 8 {
		return nil
	}
	var out []nullSite
	switch s.kind {
	case kindList:
		out = append(out, nullSite{op, wrap(`[null]`), path})
		out = append(out, nullSites(op, s.elem, func(v string) string { return wrap("[" + v + "]") }, path+"[0]", depth+1)...)
	case kindMap:
		out = append(out, nullSite{op, wrap(`{"k":null}`), path})
		out = append(out, nullSites(op, s.value, func(v string) string { return wrap(`{"k":` + v + `}`) }, path+`["k"]`, depth+1)...)
	case kindStructure:
		for _, mem := range s.members {
			p := mem.name
			if path != "" {
				p = path + "." + mem.name
			}
			out = append(out, nullSites(op, mem.shape, func(v string) string { return wrap(`{"` + mem.name + `":` + v + `}`) }, p, depth+1)...)
		}
	}
	return out
}

// No list or map of the model is sparse, so a null directly inside any of
// them, in any operation's input and at any depth, is a serialization
// error naming the member that holds it, whatever else the body lacks.
func TestNullInEveryListAndMapIsRefused(t *testing.T) {
	m := mustLoad(t)
	var sites []nullSite
	for _, op := range m.Operations() {
		if in := m.inputs[op]; in != nil {
			sites = append(sites, nullSites(op, in, func(v string) string { return v }, "", 0)...)
		}
	}
	seen := map[string]bool{}
	for _, st := range sites {
		seen[st.op+" "+st.path] = true
		err := m.Check(st.op, []byte(st.body))
		var se *SerializationError
		if !errors.As(err, &se) {
			t.Errorf("%s %s: Check = %v, want *SerializationError", st.op, st.body, err)
			continue
		}
		if want := "Member '" + st.path + "' holds null "; !strings.HasPrefix(se.Message, want) {
			t.Errorf("%s %s: message %q, want it to start %q", st.op, st.body, se.Message, want)
		}
	}
	// The walk reached every kind of collection the model has in inputs.
	for _, want := range []string{
		"CreateCluster SubnetIds", "CreateCluster TagList", "CopyBackupToRegion TagList",
		"TagResource TagList", "UntagResource TagKeyList",
		"DescribeClusters Filters", `DescribeClusters Filters["k"]`,
		"DescribeBackups Filters", `DescribeBackups Filters["k"]`,
	} {
		if !seen[want] {
			t.Errorf("no null case for %s", want)
		}
	}
}
