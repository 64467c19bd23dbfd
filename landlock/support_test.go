package landlock_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/vm-run/vm-run/landlock"
)

const allErrata = 0x7 // errata 1 to 3 fixed, as on Linux 6.18

var allFeatures = []landlock.Feature{
	landlock.FeatureFilesystem, landlock.FeatureRefer, landlock.FeatureTruncate,
	landlock.FeatureTCP, landlock.FeatureIoctlDev, landlock.FeatureScopeAbstractUnix,
	landlock.FeatureScopeSignal, landlock.FeatureResolveUnix, landlock.FeatureUDP,
}

func TestSupportHas(t *testing.T) {
	for _, tt := range []struct {
		support landlock.Support
		want    []landlock.Feature // available; all others must not be
	}{
		{landlock.Support{ABI: 0}, nil},
		{landlock.Support{ABI: 1}, allFeatures[:1]},
		{landlock.Support{ABI: 2}, allFeatures[:2]},
		{landlock.Support{ABI: 3}, allFeatures[:3]},
		{landlock.Support{ABI: 4, Errata: 0x1}, allFeatures[:4]},
		{landlock.Support{ABI: 5, Errata: 0x1}, allFeatures[:5]},
		// Erratum 2 decides everything from ABI 6 on.
		{landlock.Support{ABI: 6, Errata: 0x1}, allFeatures[:5]},
		{landlock.Support{ABI: 6, Errata: 0x2}, allFeatures[:7]},
		{landlock.Support{ABI: 7, Errata: 0x5}, allFeatures[:5]},
		{landlock.Support{ABI: 7, Errata: allErrata}, allFeatures[:7]},
		{landlock.Support{ABI: 8, Errata: allErrata}, allFeatures[:7]},
		{landlock.Support{ABI: 9, Errata: allErrata}, allFeatures[:8]},
		{landlock.Support{ABI: 9, Errata: 0x1}, allFeatures[:5]},
		{landlock.Support{ABI: 10, Errata: allErrata}, allFeatures},
		{landlock.Support{ABI: 42, Errata: allErrata}, allFeatures},
	} {
		for _, f := range allFeatures {
			want := slices.Contains(tt.want, f)
			if got := tt.support.Has(f); got != want {
				t.Errorf("%+v.Has(%q) = %v, want %v", tt.support, f, got, want)
			}
		}
		if got := tt.support.Has("teleport"); got {
			t.Errorf("%+v.Has(%q) = true, want false", tt.support, "teleport")
		}
	}
}

func TestSupportEnforcedABI(t *testing.T) {
	for _, tt := range []struct {
		support landlock.Support
		want    int
	}{
		{landlock.Support{ABI: 0}, 0},
		{landlock.Support{ABI: 5}, 5},
		{landlock.Support{ABI: 6}, 5},
		{landlock.Support{ABI: 7, Errata: 0x2}, 7},
		{landlock.Support{ABI: 12, Errata: 0x2}, 11},
		{landlock.Support{ABI: 12}, 5},
	} {
		if got := tt.support.EnforcedABI(); got != tt.want {
			t.Errorf("%+v.EnforcedABI() = %d, want %d", tt.support, got, tt.want)
		}
	}
}

func TestSupportFeatures(t *testing.T) {
	s := landlock.Support{ABI: 6, Errata: 0x1}
	got := s.Features()
	var names []landlock.Feature
	for _, fs := range got {
		names = append(names, fs.Feature)
		if fs.Description == "" {
			t.Errorf("Features(): %q has no description", fs.Feature)
		}
	}
	if !slices.Equal(names, allFeatures) {
		t.Fatalf("Features() lists %q, want %q", names, allFeatures)
	}
	signal := got[slices.Index(names, landlock.FeatureScopeSignal)]
	want := landlock.FeatureStatus{
		Feature: landlock.FeatureScopeSignal, ABI: 6, Erratum: 2,
		Need: "ABI 6 with erratum 2", Description: signal.Description, Available: false,
	}
	if signal != want {
		t.Errorf("Features()[scope-signal] = %+v, want %+v", signal, want)
	}
	if tcp := got[slices.Index(names, landlock.FeatureTCP)]; !tcp.Available || tcp.Need != "ABI 4" {
		t.Errorf("Features()[tcp] = %+v, want available, need %q", tcp, "ABI 4")
	}
}

func TestRulesRequired(t *testing.T) {
	for _, tt := range []struct {
		name  string
		rules landlock.Rules
		want  []landlock.Feature
	}{
		{"empty", landlock.Rules{}, nil},
		{"listed", landlock.Rules{Require: []landlock.Feature{"scope-signal", "truncate"}},
			[]landlock.Feature{"scope-signal", "truncate"}},
		{"paths", landlock.Rules{Read: []string{"/usr"}}, []landlock.Feature{"filesystem"}},
		{"ports", landlock.Rules{BindTCP: []uint16{80}}, []landlock.Feature{"tcp"}},
		{"devices", landlock.Rules{Devices: []string{"/dev/null"}},
			[]landlock.Feature{"filesystem", "ioctl-dev"}},
		{"no duplicates", landlock.Rules{Require: []landlock.Feature{"tcp", "filesystem"},
			Write: []string{"/tmp"}, ConnectTCP: []uint16{443}},
			[]landlock.Feature{"tcp", "filesystem"}},
	} {
		if got := tt.rules.Required(); !slices.Equal(got, tt.want) {
			t.Errorf("%s: Required() = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestRulesCheck(t *testing.T) {
	strict := landlock.Rules{
		Read:    []string{"/usr"},
		Devices: []string{"/dev/null"},
		Require: []landlock.Feature{landlock.FeatureTruncate, landlock.FeatureScopeSignal},
	}
	withTCP := landlock.Rules{ConnectTCP: []uint16{443}}
	for _, tt := range []struct {
		name    string
		rules   landlock.Rules
		support landlock.Support
		// wantMissing is the feature the error names ("" for no
		// error); wantText are substrings of the error.
		wantMissing landlock.Feature
		wantText    []string
	}{
		{"nothing required, no landlock", landlock.Rules{}, landlock.Support{}, "", nil},
		{"no landlock", strict, landlock.Support{Reason: "Landlock is disabled at boot"},
			"truncate", []string{"ABI 0", `"truncate" needs ABI 3`, "disabled at boot"}},
		{"ABI 1", strict, landlock.Support{ABI: 1}, "truncate", []string{"ABI 1,", "needs ABI 3"}},
		{"ABI 2", strict, landlock.Support{ABI: 2}, "truncate", []string{"ABI 2,"}},
		{"ABI 3", strict, landlock.Support{ABI: 3}, "scope-signal", []string{"ABI 3,", "needs ABI 6 with erratum 2"}},
		{"ABI 4", strict, landlock.Support{ABI: 4, Errata: 1}, "scope-signal", []string{"ABI 4,"}},
		{"ABI 5", strict, landlock.Support{ABI: 5, Errata: 1}, "scope-signal", []string{"ABI 5,"}},
		{"ABI 6 without erratum 2", strict, landlock.Support{ABI: 6, Errata: 1}, "scope-signal",
			[]string{"ABI 6 without erratum 2,", "needs ABI 6 with erratum 2"}},
		{"ABI 6 with erratum 2", strict, landlock.Support{ABI: 6, Errata: 2}, "", nil},
		{"ABI 7 without erratum 2", strict, landlock.Support{ABI: 7, Errata: 5}, "scope-signal",
			[]string{"ABI 7 without erratum 2,"}},
		{"ABI 7", strict, landlock.Support{ABI: 7, Errata: allErrata}, "", nil},
		{"devices imply ioctl-dev", landlock.Rules{Devices: []string{"/dev/null"}},
			landlock.Support{ABI: 4}, "ioctl-dev", []string{`"ioctl-dev" needs ABI 5`}},
		{"ports imply tcp", withTCP, landlock.Support{ABI: 3}, "tcp", []string{`"tcp" needs ABI 4`}},
		{"ports with tcp", withTCP, landlock.Support{ABI: 4}, "", nil},
		{"paths imply filesystem", landlock.Rules{Write: []string{"/tmp"}}, landlock.Support{},
			"filesystem", []string{`"filesystem" needs ABI 1`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			warnings, err := tt.rules.Check(tt.support)
			if len(warnings) != 0 {
				t.Errorf("Check(%+v) warnings = %q, want none without best effort", tt.support, warnings)
			}
			var missing *landlock.MissingFeatureError
			switch {
			case tt.wantMissing == "" && err != nil:
				t.Fatalf("Check(%+v) = %v, want nil", tt.support, err)
			case tt.wantMissing == "":
				return
			case !errors.As(err, &missing):
				t.Fatalf("Check(%+v) = %v, want a *MissingFeatureError", tt.support, err)
			}
			if missing.Feature != tt.wantMissing || missing.ABI != tt.support.ABI {
				t.Errorf("Check(%+v) missing %q on ABI %d, want %q on ABI %d",
					tt.support, missing.Feature, missing.ABI, tt.wantMissing, tt.support.ABI)
			}
			for _, s := range tt.wantText {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("Check(%+v) = %q, want it to contain %q", tt.support, err, s)
				}
			}
		})
	}
}

func TestRulesCheckBestEffort(t *testing.T) {
	rules := landlock.Rules{
		Read:       []string{"/usr"},
		ConnectTCP: []uint16{443},
		Require:    []landlock.Feature{landlock.FeatureScopeSignal},
		BestEffort: true,
	}
	for _, tt := range []struct {
		support landlock.Support
		want    []landlock.Feature // named by the warnings, in order
	}{
		{landlock.Support{}, []landlock.Feature{"scope-signal", "filesystem", "tcp"}},
		{landlock.Support{ABI: 3}, []landlock.Feature{"scope-signal", "tcp"}},
		{landlock.Support{ABI: 7, Errata: 1}, []landlock.Feature{"scope-signal"}},
		{landlock.Support{ABI: 7, Errata: allErrata}, nil},
	} {
		warnings, err := rules.Check(tt.support)
		if err != nil {
			t.Errorf("Check(%+v) with best effort = %v, want nil", tt.support, err)
			continue
		}
		if len(warnings) != len(tt.want) {
			t.Errorf("Check(%+v) warnings = %q, want one per %q", tt.support, warnings, tt.want)
			continue
		}
		for i, f := range tt.want {
			if !strings.Contains(warnings[i], fmt.Sprintf("%q is not available", f)) ||
				!strings.Contains(warnings[i], "best_effort: ") {
				t.Errorf("Check(%+v) warning %d = %q, want it to name %q and what goes unenforced",
					tt.support, i, warnings[i], f)
			}
		}
	}
}

func TestRulesCheckUnknownFeature(t *testing.T) {
	for _, bestEffort := range []bool{false, true} {
		rules := landlock.Rules{Require: []landlock.Feature{"tcp", "teleport"}, BestEffort: bestEffort}
		_, err := rules.Check(landlock.Support{ABI: 7, Errata: allErrata})
		if !errors.Is(err, landlock.ErrUnknownFeature) || !strings.Contains(err.Error(), `"teleport"`) {
			t.Errorf("Check(require teleport, best effort %v) = %v, want ErrUnknownFeature naming it", bestEffort, err)
		}
	}
}

func ExampleRules_Check() {
	rules := landlock.Rules{
		Read:    []string{"/usr"},
		Require: []landlock.Feature{landlock.FeatureScopeSignal},
	}
	// A Linux 6.12 kernel before the erratum 2 fix was backported.
	kernel := landlock.Support{ABI: 6, Errata: 0x1}
	_, err := rules.Check(kernel)
	fmt.Println(err)

	rules.BestEffort = true
	warnings, _ := rules.Check(kernel)
	fmt.Println(warnings[0])
	// Output:
	// landlock feature "scope-signal" is not available: the kernel has Landlock ABI 6 without erratum 2, "scope-signal" needs ABI 6 with erratum 2
	// landlock feature "scope-signal" is not available: the kernel has Landlock ABI 6 without erratum 2, "scope-signal" needs ABI 6 with erratum 2; best_effort: the sandbox can signal processes outside it that its uid may signal
}
