package redisstore

import (
	"strings"
	"testing"
)

// Every production script reads Redis TIME alone: none of them names the
// test-only clock keys, and every script that uses the clock still has a
// now_ms. With TestClock the keys are read.
func TestProductionScriptsReadOnlyRedisTime(t *testing.T) {
	for name, body := range map[string]string{
		"enqueue": luaEnqueue, "claim": luaClaim, "renew": luaRenew, "beginVerify": luaBeginVerify,
		"complete": luaComplete, "fail": luaFail, "release": luaRelease, "reap": luaReap, "now": luaNow,
	} {
		test := assemble(body)
		prod := withProdClock(test)
		if !strings.Contains(test, "test:clock_offset_ms") {
			t.Errorf("%s: the test script does not read the clock keys", name)
		}
		if strings.Contains(prod, "test:clock") {
			t.Errorf("%s: the production script reads a test clock key", name)
		}
		if !strings.Contains(prod, prodNowMs) || strings.Count(prod, "local function now_ms()") != 1 {
			t.Errorf("%s: the production script lacks exactly one Redis TIME now_ms", name)
		}
	}
}
