package conffile_test

import (
	"fmt"

	"github.com/dispatchflow/dispatchflow/conffile"
)

func Example() {
	var cfg struct {
		Endpoints []struct {
			ID  string `json:"id"`
			URL string `json:"url"`
		} `json:"endpoints"`
	}
	raw, err := conffile.ToJSON([]byte("endpoints:\n  - {id: crm, ulr: https://x.example/}\n"), ".yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(conffile.Strict(raw, &cfg))
	// Output: ulr: unknown field
}
