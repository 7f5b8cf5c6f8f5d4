package testsupport

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// NATSWith starts a nats-server with JetStream on a random loopback port,
// its store in a temp dir, configured further by configure (users and
// their permissions, NKey users, an operator, TLS), and shut down when
// the test ends. It stands for an external server an operator runs, so
// it is nats-server's own, not the app's embedded one, and requires only
// what configure sets.
func NATSWith(t testing.TB, configure func(*server.Options)) *server.Server {
	t.Helper()
	opts := &server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoSigs: true, NoLog: true,
	}
	if configure != nil {
		configure(opts)
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("nats-server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("nats-server did not start within 10s")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// NKeyUser makes a user NKey, writes its seed to a file (0600) as
// NATS_NKEY takes it, and returns the file and the server's entry for
// the user, with perms (nil: no limits).
func NKeyUser(t testing.TB, perms *server.Permissions) (seedFile string, user *server.NkeyUser) {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := kp.Seed()
	if err != nil {
		t.Fatal(err)
	}
	seedFile = filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	return seedFile, &server.NkeyUser{Nkey: pub, Permissions: perms}
}

// Operator is a NATS operator with one JetStream-enabled account, for a
// server in operator (decentralised JWT) mode, as NATS_CREDS is used
// against.
type Operator struct {
	claims  *jwt.OperatorClaims
	account nkeys.KeyPair
	accJWT  string
	accPub  string
	sysJWT  string
	sysPub  string
}

// NewOperator makes an operator and an account signed by it, with
// unlimited JetStream.
func NewOperator(t testing.TB) *Operator {
	t.Helper()
	op, err := nkeys.CreateOperator()
	if err != nil {
		t.Fatal(err)
	}
	opPub, _ := op.PublicKey()
	// JetStream needs the server's system account, which the operator
	// names and signs like any other.
	sys, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	sysPub, _ := sys.PublicKey()
	sysJWT, err := jwt.NewAccountClaims(sysPub).Encode(op)
	if err != nil {
		t.Fatal(err)
	}
	oc := jwt.NewOperatorClaims(opPub)
	oc.SystemAccount = sysPub
	opJWT, err := oc.Encode(op)
	if err != nil {
		t.Fatal(err)
	}
	claims, err := jwt.DecodeOperatorClaims(opJWT)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	accPub, _ := acc.PublicKey()
	ac := jwt.NewAccountClaims(accPub)
	ac.Name = "OTJ"
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	accJWT, err := ac.Encode(op)
	if err != nil {
		t.Fatal(err)
	}
	return &Operator{claims: claims, account: acc, accJWT: accJWT, accPub: accPub, sysJWT: sysJWT, sysPub: sysPub}
}

// Configure puts a server in operator mode trusting o, with o's account
// in a memory resolver: pass it to NATSWith.
func (o *Operator) Configure(opts *server.Options) {
	opts.TrustedOperators = []*jwt.OperatorClaims{o.claims}
	r := &server.MemAccResolver{}
	// MemAccResolver.Store cannot fail.
	_ = r.Store(o.accPub, o.accJWT)
	_ = r.Store(o.sysPub, o.sysJWT)
	opts.AccountResolver, opts.SystemAccount = r, o.sysPub
}

// UserCreds makes a user of o's account and writes its credentials file
// (its JWT and seed, as nsc generate creds does) to a 0600 file, whose
// path it returns.
func (o *Operator) UserCreds(t testing.TB, name string) string {
	t.Helper()
	return o.writeCreds(t, name, o.account)
}

// ForeignCreds writes the credentials of a user signed by an account
// o's server does not know: valid in form, refused by the server.
func (o *Operator) ForeignCreds(t testing.TB) string {
	t.Helper()
	acc, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	return o.writeCreds(t, "stranger", acc)
}

func (o *Operator) writeCreds(t testing.TB, name string, acc nkeys.KeyPair) string {
	t.Helper()
	u, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := u.PublicKey()
	uc := jwt.NewUserClaims(pub)
	uc.Name = name
	userJWT, err := uc.Encode(acc)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := u.Seed()
	creds, err := jwt.FormatUserConfig(userJWT, seed)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name+".creds")
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
