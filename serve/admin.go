package serve

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/triage-router/triage/datasets"
	"github.com/triage-router/triage/internal/echo"
	"github.com/triage-router/triage/internal/writestall"
)

func (s *Server) handleReload(c *gin.Context) {
	res, err := s.Reload()
	if err != nil {
		writeError(c, s.log, err)
		return
	}
	c.JSON(http.StatusOK, res)
}

// streamWriter is c's writer for a download that may rightly outlast
// the server's write timeout (a large export to a slow client): the
// timeout bounds each write instead, so a client that stops reading is
// cut off rather than holding the handler, and a snapshot's temporary
// copy, for ever. The caller defers its Arm for net/http's last chunk.
func (s *Server) streamWriter(c *gin.Context) *writestall.Writer {
	return writestall.New(c.Writer, s.cfg.Limits.WriteTimeout)
}

func (s *Server) handleSnapshot(c *gin.Context) {
	w := s.streamWriter(c)
	defer w.Arm()
	// Drain the queues first so the snapshot holds everything routed
	// (or proxied and finished) before the call.
	if err := s.flushRecords(c.Request.Context()); err != nil {
		writeError(c, s.log, err)
		return
	}
	name := "triage-feedback-" + s.now().UTC().Format("20060102T150405Z") + ".db"
	c.Header("Content-Type", "application/octet-stream")
	c.Header("Content-Disposition", `attachment; filename="`+name+`"`)
	if _, err := s.store.Snapshot(c.Request.Context(), w); err != nil {
		if !c.Writer.Written() {
			writeError(c, s.log, err)
			return
		}
		// Part of the file is out: cut the connection so the client sees
		// a failed download, not a short file.
		s.log.Error("snapshot failed mid-stream", "err", err)
		panic(http.ErrAbortHandler)
	}
}

func (s *Server) handleExport(c *gin.Context) {
	var opts datasets.ExportOptions
	// A misspelt parameter (?sinse=) would export the whole db while the
	// caller believes it asked for a part of it.
	for k := range c.Request.URL.Query() {
		if k != "since" {
			writeError(c, s.log, Errorf(CodeInvalidRequest, "unknown query parameter %s; export takes since (an RFC 3339 time)", echo.Quote(k)))
			return
		}
	}
	if v := c.Query("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			writeError(c, s.log, Errorf(CodeInvalidRequest, "since is %s, want an RFC 3339 time like 2026-11-27T10:00:00Z", echo.Quote(v)))
			return
		}
		opts.Since = t
	}
	w := s.streamWriter(c)
	defer w.Arm()
	if err := s.flushRecords(c.Request.Context()); err != nil {
		writeError(c, s.log, err)
		return
	}
	c.Header("Content-Type", "application/x-ndjson")
	c.Status(http.StatusOK)
	if _, err := s.store.Export(c.Request.Context(), w, opts); err != nil {
		if !c.Writer.Written() {
			writeError(c, s.log, err)
			return
		}
		s.log.Error("export failed mid-stream", "err", err)
		panic(http.ErrAbortHandler)
	}
}
