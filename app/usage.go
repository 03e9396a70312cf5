package app

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/kelseyhightower/envconfig"

	"github.com/dispatchflow/dispatchflow/config"
)

// PrintConfigUsage writes every environment variable with its default and meaning.
func PrintConfigUsage(w io.Writer) {
	tw := tabwriter.NewWriter(w, 2, 0, 2, ' ', 0)
	const format = `{{range .}}  {{usage_key .}}	{{usage_default .}}	{{usage_description .}}
{{end}}`
	fmt.Fprintln(tw, "  VARIABLE\tDEFAULT\tMEANING")
	_ = envconfig.Usagef(config.Prefix, &config.Config{}, tw, format)
	_ = envconfig.Usagef("TEMPORAL", &config.Temporal{}, tw, format)
	_ = envconfig.Usagef("", &config.OTel{}, tw, format)
	_ = tw.Flush()
}
