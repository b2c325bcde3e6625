package cli

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"time"

	"petrel/internal/client/oauth"
)

func authCommands() []command {
	return []command{
		{noun: "auth", verb: "login", args: "[--config F] [--no-browser] ACCOUNT",
			help: "log an account in with OAuth 2.0 (device code or browser) and keep its refresh token",
			more: `
For accounts with an [accounts.NAME.oauth] table. The flow is the table's "flow": "device" prints
a URL and a code to enter on any device; "browser" opens the provider's login page and receives
the answer on a loopback address of this machine (RFC 8252). The refresh token is written to
oauth.token_file (mode 0600); petrel fetch and petrel send refresh the access token from it.
Run it again when they exit with status 4.`,
			flags: func() *flag.FlagSet { return authLoginFlags(new(string), new(bool)) },
			run:   authLogin},
		{noun: "auth", verb: "status", args: "[--config F] ACCOUNT",
			help: "show whether an OAuth account is logged in and until when its access token lasts",
			run:  authStatus},
	}
}

func authLoginFlags(conf *string, noBrowser *bool) *flag.FlagSet {
	fs := flag.NewFlagSet("petrel auth login", flag.ContinueOnError)
	fs.StringVar(conf, "config", "", "client config `FILE` (default ~/.config/petrel/client.toml)")
	fs.BoolVar(noBrowser, "no-browser", false, "only print the URL, do not start a browser (xdg-open)")
	return fs
}

func authLogin(e *Env, args []string) error {
	var conf string
	var noBrowser bool
	fs := authLoginFlags(&conf, &noBrowser)
	fs.SetOutput(e.Stderr)
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		return fmt.Errorf("%w: petrel auth login [--config F] [--no-browser] ACCOUNT", ErrUsage)
	}
	cfg, err := loadClientConfig(conf)
	if err != nil {
		return err
	}
	a := cfg.Accounts[fs.Arg(0)]
	if a == nil || a.OAuth == nil {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("no account %q with an [oauth] table in %s", fs.Arg(0), cfg.File)}
	}
	lo := oauth.LoginOptions{Out: e.Stdout}
	if !noBrowser {
		lo.Open = func(u string) error { return exec.Command("xdg-open", u).Start() }
	}
	if err := oauth.Login(e.Ctx, a.Name, a.OAuth, lo); err != nil {
		return &ExitError{Code: ExitFailed, Err: err}
	}
	fmt.Fprintf(e.Stdout, "%s: logged in; tokens saved in %s\n", a.Name, a.OAuth.TokenFile)
	return nil
}

func authStatus(e *Env, args []string) error {
	fs := flag.NewFlagSet("petrel auth status", flag.ContinueOnError)
	conf := fs.String("config", "", "client config `FILE`")
	fs.SetOutput(e.Stderr)
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		return fmt.Errorf("%w: petrel auth status [--config F] ACCOUNT", ErrUsage)
	}
	cfg, err := loadClientConfig(*conf)
	if err != nil {
		return err
	}
	a := cfg.Accounts[fs.Arg(0)]
	if a == nil || a.OAuth == nil {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("no account %q with an [oauth] table in %s", fs.Arg(0), cfg.File)}
	}
	st, err := oauth.Status(a.OAuth.TokenFile)
	if errors.Is(err, os.ErrNotExist) {
		return &ExitError{Code: ExitLogin, Err: fmt.Errorf("%s: not logged in: run `petrel auth login %s`", a.Name, a.Name)}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "%s: logged in (refresh token: %v); access token valid until %s\n", a.Name, st.HasRefresh, st.Expiry.Local().Format(time.RFC3339))
	return nil
}

// loginOr is ExitLogin when err says the OAuth login must be renewed, else code.
func loginOr(err error, code int) int {
	if errors.Is(err, oauth.ErrLoginAgain) {
		return ExitLogin
	}
	return code
}
