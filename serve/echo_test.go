package serve

import (
	"strings"
	"testing"

	"github.com/triage-router/triage/internal/echo"
)

// TestErrorsEchoClientInputByItsStart: an error that names what the
// client sent (a path, a method, a field, a meta key, a query parameter)
// repeats its start, escaped, not all of it.
func TestErrorsEchoClientInputByItsStart(t *testing.T) {
	ts := newTestServer(t, withAdmin)
	long := strings.Repeat("x", 8000)
	cut := long[:echo.MaxBytes]
	for _, tc := range []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
		want                     string
	}{
		{"an unknown path", "GET", "/" + long, "", nil, 404, "no route GET /" + cut[1:] + "..."},
		{"a path with a line break", "GET", "/a%0Ab", "", nil, 404, `no route GET /a%0Ab;`},
		{"a method not allowed", strings.ToUpper(long), "/v1/route", "", nil, 405, strings.ToUpper(cut) + "... is not allowed on /v1/route"},
		{"an unknown field", "POST", "/v1/route", `{"prompt":"hi","` + long + `":1}`, nil, 400, `unknown field "` + cut + `"...: this server rejects`},
		{"a meta key whose value is not a scalar", "POST", "/v1/route", `{"prompt":"hi","meta":{"` + long + `":[1]}}`, nil, 400, "meta." + cut + "...: want a string"},
		{"an export's unknown query parameter", "GET", "/admin/feedback/export?" + long + "=1", "", []string{"Authorization", "Bearer " + token}, 400, `unknown query parameter "` + cut + `"...;`},
		{"an export's since", "GET", "/admin/feedback/export?since=" + long, "", []string{"Authorization", "Bearer " + token}, 400, `since is "` + cut + `"..., want`},
	} {
		t.Run(tc.name+" is repeated by its start", func(t *testing.T) {
			w := ts.do(t, tc.method, tc.path, tc.body, tc.hdr...)
			e := errorOf(t, w)
			if w.Code != tc.status || !strings.Contains(e.Message, tc.want) || w.Body.Len() > 1000 {
				t.Errorf("%d, %d bytes: %.300s; want %d with %q, under 1000 bytes", w.Code, w.Body.Len(), w.Body, tc.status, tc.want)
			}
		})
	}
}
