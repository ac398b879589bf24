package models

import "encoding/json"

// MarshalIndentForTest encodes without validating, to build bad files.
func (a *Artifact) MarshalIndentForTest() ([]byte, error) { return json.MarshalIndent(a, "", " ") }
