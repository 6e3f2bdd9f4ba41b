package coordinator_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/coordinator"
	"github.com/pouwfarm/pouwfarm/coordinator/api"
	"github.com/pouwfarm/pouwfarm/coordinator/client"
	"github.com/pouwfarm/pouwfarm/devnet"
	"github.com/pouwfarm/pouwfarm/gpu"
	"github.com/pouwfarm/pouwfarm/pouw"
	"github.com/pouwfarm/pouwfarm/scheduler"
	"github.com/pouwfarm/pouwfarm/trace/workload"
)

// testPKI is a CA made at test time, with the certificates it signed
// written as PEM files.
type testPKI struct {
	dir    string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	CAFile string
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pouw test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{dir: t.TempDir(), ca: ca, caKey: key}
	p.CAFile = p.write(t, "ca.pem", "CERTIFICATE", der)
	return p
}

func (p *testPKI) write(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// issue signs a certificate: a server one for 127.0.0.1, or a client one
// with the given CN and URI SANs. It returns the cert and key files.
func (p *testPKI) issue(t *testing.T, name string, server bool, cn string, uris ...string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return p.write(t, name+".pem", "CERTIFICATE", der), p.write(t, name+".key", "EC PRIVATE KEY", kd)
}

func tlsClient(t *testing.T, base, token, ca, cert, key string) *client.Client {
	t.Helper()
	cfg, err := client.TLSConfig(ca, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(base, client.Options{Token: token, TLS: cfg, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestFarmProvesOverHTTPSAndMTLS: a real `pouw farm` (devnet.RunFarm) proves
// a job of a coordinator serving HTTPS, then one requiring mTLS whose client
// certificate names the prover. Certificates are made at test time.
func TestFarmProvesOverHTTPSAndMTLS(t *testing.T) {
	t.Run("https", func(t *testing.T) { runTLSFarm(t, false, nil) })
	t.Run("mtls", func(t *testing.T) { runTLSFarm(t, true, nil) })
}

// tlsRun is what an end-to-end run handed out: every secret a log must
// never show.
type tlsRun struct {
	adminToken string
	tokens     []string
}

// runTLSFarm runs a coordinator over HTTPS (mTLS when asked) and a farm
// that proves one job on it; with logs set, both log at debug level there,
// and the run also rotates, revokes and suspends through the admin API.
func runTLSFarm(t *testing.T, mtls bool, logs io.Writer) tlsRun {
	pki := newPKI(t)
	srvCert, srvKey := pki.issue(t, "server", true, "coordinator")
	cfg := coordinator.Config{TLSCert: srvCert, TLSKey: srvKey}
	if mtls {
		cfg.ClientCA = pki.CAFile
	}
	// The farm logs into farmLogs (where its metrics URL is read from),
	// and at debug level into logs too when given.
	var farmLogs syncBuffer
	var w io.Writer = &farmLogs
	if logs != nil {
		w = io.MultiWriter(&farmLogs, logs)
		cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	farmLog := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, _, _ := start(t, cfg)
	if !strings.HasPrefix(c.URL(), "https://") {
		t.Fatalf("URL %s, want https", c.URL())
	}
	ctx := context.Background()
	admin := tlsClient(t, c.URL(), c.AdminToken(), pki.CAFile, "", "")
	if _, err := admin.Deposit(ctx, 1000, "test"); err != nil {
		t.Fatal(err)
	}
	reg, err := admin.RegisterProver(ctx, "farm-a")
	if err != nil {
		t.Fatal(err)
	}
	run := tlsRun{adminToken: c.AdminToken(), tokens: []string{reg.Token}}
	tr, err := workload.Macro("fib", 7, 200)
	if err != nil {
		t.Fatal(err)
	}
	info, err := admin.UploadBlob(ctx, encode(t, tr))
	if err != nil {
		t.Fatal(err)
	}
	res, err := admin.Ingest(ctx, pouw.IngestRequest{Tier: pouw.TierMacro, IntentID: tr.Header.IntentID,
		TraceHash: info.Hash, FeeBudget: 200, RewardBudget: 100})
	if err != nil {
		t.Fatal(err)
	}

	var cert, key string
	if mtls {
		cert, key = pki.issue(t, "farm-a", false, "farm-a", api.ProverURIPrefix+"farm-a")
	}
	tlsCfg, err := client.TLSConfig(pki.CAFile, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	backs, err := devnet.Backends()
	if err != nil {
		t.Fatal(err)
	}
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- devnet.RunFarm(fctx, devnet.FarmOptions{
			Coordinator: c.URL(), Token: reg.Token, ProverID: "farm-a", TLS: tlsCfg, Logger: farmLog,
			// --pprof is on in the mTLS runs only: it must be served
			// exactly when asked for.
			MetricsAddr: "127.0.0.1:0", Pprof: mtls,
			Host: scheduler.HostOptions{CPUCores: 1, HostMemoryBytes: 4 << 30}, GPUs: gpu.Null{Reason: "test"},
			Backends: backs, IdleMin: 10 * time.Millisecond, IdleMax: 50 * time.Millisecond,
		})
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		j, err := admin.Job(ctx, res.Job.JobID)
		if err == nil && j.State == pouw.StateCompleted {
			if j.ProverID != "farm-a" {
				t.Fatalf("completed by %q", j.ProverID)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job not completed over TLS within 60s: %+v %v", j, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	checkFarmPprof(t, farmLogs.String(), mtls)
	if logs != nil {
		rot, err := admin.RotateToken(ctx, "farm-a", time.Second)
		if err != nil {
			t.Fatal(err)
		}
		run.tokens = append(run.tokens, rot.Token)
		if _, err := admin.Suspend(ctx, "farm-a", "log test"); err != nil {
			t.Fatal(err)
		}
		if _, err := admin.RevokeTokens(ctx, "farm-a"); err != nil {
			t.Fatal(err)
		}
		// The farm now meets a revoked token: it logs the 401 and stops.
		select {
		case err := <-done:
			done <- err
		case <-time.After(10 * time.Second):
		}
	}
	cancel()
	// After the suspension or the revoke the farm stops on its 403 or 401,
	// as it should.
	if err := <-done; err != nil && (logs == nil || !(errors.Is(err, client.ErrUnauthorized) || errors.Is(err, client.ErrSuspended))) {
		t.Fatalf("farm: %v", err)
	}
	return run
}

// TestMTLSTiesClientCertificateToProverID: with --client-ca, a prover's
// token is refused (403) without a client certificate or with one naming
// another prover, so a stolen token alone is useless; a certificate from
// another CA fails the handshake.
func TestMTLSTiesClientCertificateToProverID(t *testing.T) {
	pki := newPKI(t)
	srvCert, srvKey := pki.issue(t, "server", true, "coordinator")
	c, _, _ := start(t, coordinator.Config{TLSCert: srvCert, TLSKey: srvKey, ClientCA: pki.CAFile})
	ctx := context.Background()
	admin := tlsClient(t, c.URL(), c.AdminToken(), pki.CAFile, "", "")
	reg, err := admin.RegisterProver(ctx, "farm-a")
	if err != nil {
		t.Fatal(err)
	}
	claim := pouw.ClaimRequest{Tiers: []pouw.JobTier{pouw.TierMacro}, Backends: []string{"stark"}}
	byCN, byCNKey := pki.issue(t, "cn", false, "farm-a")
	byURI, byURIKey := pki.issue(t, "uri", false, "some host name", api.ProverURIPrefix+"farm-a")
	other, otherKey := pki.issue(t, "other", false, "farm-b", api.ProverURIPrefix+"farm-b")
	for name, tc := range map[string]struct {
		cert, key string
		ok        bool
	}{
		"CN names the prover":      {byCN, byCNKey, true},
		"URI SAN names the prover": {byURI, byURIKey, true},
		"certificate of farm-b":    {other, otherKey, false},
		"no client certificate":    {"", "", false},
	} {
		_, err := tlsClient(t, c.URL(), reg.Token, pki.CAFile, tc.cert, tc.key).Claim(ctx, claim)
		if tc.ok && !errors.Is(err, client.ErrNoJob) && err != nil {
			t.Errorf("%s: %v, want access", name, err)
		}
		var ae *client.Error
		if !tc.ok && (!errors.As(err, &ae) || ae.Status != http.StatusForbidden || ae.Code != api.CodeCertMismatch) {
			t.Errorf("%s: %v, want 403 %s", name, err, api.CodeCertMismatch)
		}
	}
	// A certificate signed by another CA does not get through the handshake.
	stranger := newPKI(t)
	sc, sk := stranger.issue(t, "stranger", false, "farm-a")
	if _, err := tlsClient(t, c.URL(), reg.Token, pki.CAFile, sc, sk).Claim(ctx, claim); err == nil {
		t.Error("a client certificate of another CA was accepted")
	}
}

// TestTLSRefusesOldVersionsAndUnknownServers: the coordinator speaks TLS 1.3
// only, and a farm without the CA refuses the server.
func TestTLSRefusesOldVersionsAndUnknownServers(t *testing.T) {
	pki := newPKI(t)
	srvCert, srvKey := pki.issue(t, "server", true, "coordinator")
	c, _, _ := start(t, coordinator.Config{TLSCert: srvCert, TLSKey: srvKey})
	pool := x509.NewCertPool()
	pool.AddCert(pki.ca)
	addr := strings.TrimPrefix(c.URL(), "https://")
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12})
	if err == nil {
		conn.Close()
		t.Fatal("a TLS 1.2 handshake succeeded")
	}
	conn, err = tls.Dial("tcp", addr, &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatalf("TLS 1.3 handshake: %v", err)
	}
	if v := conn.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("negotiated %x, want TLS 1.3", v)
	}
	conn.Close()
	noCA, err := client.New(c.URL(), client.Options{MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	var ue x509.UnknownAuthorityError
	if err := noCA.Healthz(context.Background()); !errors.As(err, &ue) {
		t.Errorf("a client without the CA: %v, want an unknown-authority error", err)
	}
}

// tokenShapes match any bearer token this project issues, whatever its
// value: a log line must not carry one even if it is not one of ours.
var tokenShapes = regexp.MustCompile(`pouw[pa]_[A-Za-z0-9_-]{16,}`)

// TestEndToEndLogsNeverContainTokens runs coordinator and farm over mTLS at
// debug level (a job proved, a token rotated, the prover suspended, its
// tokens revoked while the farm still runs) and scans every log line for
// the admin token, the prover tokens, and anything shaped like a token.
func TestEndToEndLogsNeverContainTokens(t *testing.T) {
	var logs syncBuffer
	run := runTLSFarm(t, true, &logs)
	out := logs.String()
	if !strings.Contains(out, "level=DEBUG") || !strings.Contains(out, "farm-a") {
		t.Fatalf("the run logged too little to be a fair test:\n%s", out)
	}
	secrets := map[string]string{"admin token": run.adminToken}
	for i, tok := range run.tokens {
		secrets["prover token "+strconv.Itoa(i+1)] = tok
	}
	for name, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("the %s is in the log", name)
		}
	}
	if m := tokenShapes.FindString(out); m != "" {
		t.Errorf("a token-shaped string is in the log: %q", m)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// checkFarmPprof reads the farm's metrics URL from its log and checks that
// /metrics is served there, and /debug/pprof/ exactly when --pprof is on.
func checkFarmPprof(t *testing.T, farmLog string, pprof bool) {
	t.Helper()
	m := regexp.MustCompile(`url=(http://\S+)/metrics`).FindStringSubmatch(farmLog)
	if m == nil {
		t.Fatalf("the farm did not log its metrics URL:\n%s", farmLog)
	}
	get := func(path string) int {
		resp, err := http.Get(m[1] + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get("/metrics"); code != http.StatusOK {
		t.Errorf("farm /metrics: %d", code)
	}
	want := http.StatusNotFound
	if pprof {
		want = http.StatusOK
	}
	if code := get("/debug/pprof/"); code != want {
		t.Errorf("farm /debug/pprof/ with pprof=%t: %d, want %d", pprof, code, want)
	}
}
