package serve

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/gin-gonic/gin"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/serve/proxy"
)

// ClientKeysEnv names the environment variable that adds client keys
// without meta: "name=key,name=key".
const ClientKeysEnv = "TRIAGE_CLIENT_KEYS"

// ClientKey is a bearer key a client sends on the /v1/ routes
// (Authorization: Bearer KEY).
type ClientKey struct {
	// Name identifies the key in logs and errors; never the key itself.
	Name string `yaml:"name"`
	// KeyEnv names the environment variable holding the key, read at
	// start. Prefer it to Key, so the config file holds no secret.
	KeyEnv string `yaml:"key_env"`
	// Key is the key itself.
	Key string `yaml:"key"`
	// Meta (tenant, app, ...) is merged into every request made with the
	// key, over the request's own metadata: the router sees it as meta
	// features and it is recorded.
	Meta datasets.Meta `yaml:"meta"`
}

func (k ClientKey) validate(i int) error {
	at := fmt.Sprintf("client_keys[%d]", i)
	switch {
	case k.Name == "":
		return fmt.Errorf("%s.name is empty; name each key (it is what logs show)", at)
	case (k.Key == "") == (k.KeyEnv == ""):
		return fmt.Errorf("%s (%s) needs exactly one of key_env (an environment variable holding the key) and key", at, k.Name)
	}
	return nil
}

// clientKey is a resolved key: its hash, so comparing takes the same
// time whatever the lengths, its name and its meta.
type clientKey struct {
	hash [sha256.Size]byte
	name string
	meta datasets.Meta
}

// clientKeys resolves the config's keys and those in $TRIAGE_CLIENT_KEYS.
func clientKeys(cfg []ClientKey, getenv func(string) string) ([]clientKey, error) {
	var out []clientKey
	seen := map[string]bool{}
	add := func(name, key string, meta datasets.Meta) error {
		if err := checkKeyName(name); err != nil {
			return err
		}
		if seen[name] {
			return fmt.Errorf("client key %q is named twice; names must be unique", name)
		}
		seen[name] = true
		out = append(out, clientKey{hash: sha256.Sum256([]byte(key)), name: name, meta: meta})
		return nil
	}
	for _, k := range cfg {
		key := k.Key
		if k.KeyEnv != "" {
			if key = getenv(k.KeyEnv); key == "" {
				return nil, fmt.Errorf("client key %q: key_env names %s, which is not set; export it", k.Name, k.KeyEnv)
			}
		}
		if err := add(k.Name, key, k.Meta); err != nil {
			return nil, err
		}
	}
	if env := getenv(ClientKeysEnv); env != "" {
		for i, pair := range strings.Split(env, ",") {
			name, key, ok := strings.Cut(strings.TrimSpace(pair), "=")
			if !ok || name == "" || key == "" {
				return nil, fmt.Errorf("%s: entry %d is not name=key", ClientKeysEnv, i+1)
			}
			if err := add(name, key, nil); err != nil {
				return nil, fmt.Errorf("%s: %w", ClientKeysEnv, err)
			}
		}
	}
	return out, nil
}

// checkKeyName refuses a key name the feedback db cannot hold: it is the
// owner of every Responses API response made with the key, kept in the db
// so that no other key reads or continues them after a restart. Such an
// owner was left out of the db, and after a restart its responses were
// unknown ids, routed for any key.
func checkKeyName(name string) error {
	if len(name) > datasets.MaxIDBytes || !utf8.ValidString(name) || strings.ContainsFunc(name, unicode.IsControl) {
		return fmt.Errorf("client key %q: a name is at most %d bytes of UTF-8 without control characters (it is stored as the owner of the responses made with the key); rename it", name, datasets.MaxIDBytes)
	}
	return nil
}

// errOpenProxy refuses to put a proxy with paid upstreams on the network
// with no keys.
var errOpenProxy = errors.New("the proxy's upstream tiers would be open to anyone who reaches this address")

// checkExposure is the secure default: a server with tiers and no client
// keys listens only on a loopback address, unless the config says
// allow_unauthenticated: true.
func checkExposure(addr string, proxyOn bool, nKeys int, allow bool) error {
	if !proxyOn || nKeys > 0 || allow || isLoopback(addr) {
		return nil
	}
	return fmt.Errorf("addr %s: %w; add client_keys (or set %s), listen on 127.0.0.1, or set allow_unauthenticated: true", addr, errOpenProxy, ClientKeysEnv)
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// needsClientKey reports whether requests to path need a client key: the
// /v1/ routes, when the server has keys.
func (s *Server) needsClientKey(path string) bool {
	return len(s.clientKeys) > 0 && strings.HasPrefix(path, "/v1/")
}

// clientAllowed checks the client key of a /v1/ request in constant time
// (every key is compared, each as a hash) and puts the key's meta in the
// request's context for the handlers to merge. Refused, it has answered
// 401.
func (s *Server) clientAllowed(c *gin.Context) bool {
	key, ok := bearer(c)
	if !ok {
		writeError(c, s.log, Errorf(CodeInvalidAPIKey, "no client key: send Authorization: Bearer KEY with a key from the server's client_keys (an OpenAI SDK sends its api_key so)"))
		return false
	}
	got := sha256.Sum256([]byte(key))
	match := -1
	for i := range s.clientKeys {
		if subtle.ConstantTimeCompare(got[:], s.clientKeys[i].hash[:]) == 1 {
			match = i
		}
	}
	// GET /v1/model shows an admin the whole model (handleModel); one
	// Authorization header cannot carry a client key and the admin token.
	if match < 0 && c.Request.Method == http.MethodGet && c.Request.URL.Path == "/v1/model" && s.isAdmin(c) {
		return true
	}
	if match < 0 {
		writeError(c, s.log, Errorf(CodeInvalidAPIKey, "the client key is not one of this server's client_keys"))
		return false
	}
	k := &s.clientKeys[match]
	ctx := proxy.WithClientName(c.Request.Context(), k.name)
	if len(k.meta) > 0 {
		ctx = proxy.WithClientMeta(ctx, k.meta)
	}
	c.Request = c.Request.WithContext(ctx)
	return true
}

// bearer is the token of an "Authorization: Bearer TOKEN" header, the
// scheme in any case (RFC 9110 §11.1), and whether the request has one.
func bearer(c *gin.Context) (string, bool) {
	const prefix = "Bearer "
	h := c.GetHeader("Authorization")
	if len(h) < len(prefix) || !strings.EqualFold(h[:len(prefix)], prefix) {
		return "", false
	}
	return h[len(prefix):], true
}
