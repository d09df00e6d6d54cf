package config

import (
	"testing"

	"gopkg.in/yaml.v3"
)

// plainDecimal is a shortcut past yaml.v3's Decode: wherever it accepts a
// number, yaml.v3 tags it !!int and decodes the same value.
func TestPlainDecimalAgreesWithYAML(t *testing.T) {
	for _, s := range []string{"0", "-0", "1", "-1", "007", "-007", "12345", "999999999999999999", "-999999999999999999", "9223372036854775807", "1_000", "0x10", "+5", "00", "1e3", "0o17", "12a"} {
		var y yaml.Node
		if err := yaml.Unmarshal([]byte(s), &y); err != nil {
			t.Fatal(err)
		}
		sc := y.Content[0]
		v, ok := plainDecimal(s)
		if !ok {
			continue
		}
		var want int64
		if sc.ShortTag() != "!!int" {
			t.Errorf("%q: tag %s but plainDecimal accepts", s, sc.ShortTag())
			continue
		}
		if err := sc.Decode(&want); err != nil || want != v {
			t.Errorf("%q: %d, yaml %d %v", s, v, want, err)
		}
	}
}
