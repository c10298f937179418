package strictyaml

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestParsePercent(t *testing.T) {
	tests := []struct {
		in      string
		want    int
		wantErr string
	}{
		{"50%", 50, ""},
		{"1%", 1, ""},
		{"100%", 100, ""},
		{" 25 %", 25, ""},
		{"50", 0, `"50" is not a percentage such as 50%`},
		{"half%", 0, `"half%" is not a whole percentage such as 50%`},
		{"12.5%", 0, `"12.5%" is not a whole percentage such as 50%`},
		{"0%", 0, "0% is not within 1%..100%"},
		{"101%", 0, "101% is not within 1%..100%"},
		{"", 0, `"" is not a percentage such as 50%`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePercent(tt.in, 1, 100)
			if tt.wantErr != "" {
				assert.EqualError(t, err, tt.wantErr)
				return
			}
			assert.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}
