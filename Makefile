# Triage. `make test` is what CI runs (.ci/run).
GO        ?= go
BIN       ?= bin/triage
DATASETS  ?= $(abspath ../shared/datasets)
SAMPLE    := testdata/sample/log.jsonl
FAST      := synthetic/fast-small
STRONG    := synthetic/strong-large

.PHONY: all build test slow-pkgs slow-cmd readme bench fmt vet quickstart fuzz clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/triage

# The main job on data the repository carries: train a router on the
# synthetic sample log (it prints the out-of-fold figures of its own
# cross-validation), then evaluate it on a fresh synthetic log it has
# never seen.
quickstart: build
	@mkdir -p out
	$(BIN) train --data $(SAMPLE) --fast $(FAST) --strong $(STRONG) -o out/sample-router.json
	$(BIN) synth --n 1000 --seed 2 --latency --confidence -o out/unseen.jsonl
	$(BIN) eval --model out/sample-router.json --data out/unseen.jsonl
	$(BIN) model show out/sample-router.json

# The statistical tests that train routers on thousands of records skip
# under -race, which slows their fits about tenfold; what runs
# concurrently inside them is covered under -race by smaller tests. They
# run here a second time without -race, so make test leaves none out
# (internal/racetest.SkipSlow, cmd/triage skipSlow).
SLOW_PKGS   := ^(TestWarmStartFromLargerL2ReachesTheColdOptimum|TestSolversAgree|TestMetaKeptOnlyWhereItRanksBetter|TestTrain|TestArtifactRoundTrip|TestRandomOutcomesCannotRoute|TestCoinFlipLogsEscalateByDefault|TestOutOfFoldIntervalHoldsNoise|TestExplain|TestAutoChoosesAmongScorers|TestRetrainGate|TestRetrainGivesTheChallengerTheView|TestDifficultyView|TestDifficultyViewKeepsTheSignalVerdict|TestTrainDesignMatchesTrain|TestGateJudgesUnseenRecords|TestGainChampionChallengerIsPerTier|TestKeepOperatingPointEscalateAll|TestGateWhenTiersTie|TestWriteReport|TestWriteReportWholeOrNotAtAll|TestWriteReportSyncsItsFolders)$$
SLOW_CMD    := ^(TestCurvesAndCalibrateOnSyntheticLatencyLog|TestCurvesAndCalibrateOnMMLU|TestRetrainImputes|TestRetrainGatePrinted|TestRetrainGateWhenTiersTie|TestTrainStreamsTheSameRouter|TestTrainDifficulty|TestTrainWordNgrams|TestInSampleFiguresAreFlagged|TestCurvesSmallLog|TestEvalCVSkipsEmptyFolds|TestCurvesWithoutLatencyOrCost|TestScoreRefusesWhatEvalRefuses|TestCannotRouteSaysSoEverywhere|TestCurvesMatchCheckReplay|TestCurvesTiersMatchCheckTiers|TestTiersTrainEvalCurvesCalibrate|TestCurvesTiersBillingPerRouter|TestRetrainJudgesUnseenRecords|TestModelShowSaysWhatTheWeightsAreOn|TestEvalSaysTheTiersLookSwapped|TestTiersThatTieExactly|TestSwappedTiersAreNamed|TestJSONCountsTheInSampleRequests|TestTiersRefuseTwoTierReplayFlags|TestTiersInSampleAdviceCanBeTaken|TestCurvesTiersReportCarriesTheInSampleNote|TestModelShowJSONGivesTheWeightsShape|TestDashReadsTheCommandsStdin|TestCurvesLineSaysQualityRelativeToStrong|TestCurvesLineGivesTheAPGRInterval|TestCurvesLineGivesTheBaselines|TestCalibrateTiersLambdaIsARowOfTheCurves|TestStdinIsReadOnce|TestUnpairedRecordsAreCountedAlike|TestCalibrateMeetsQualityOnItsInterval|TestCurvesJSONPrintsTheReportsFigures|TestCurvesTiersLineSaysQualityRelativeToTheBestTier|TestCurvesAndCalibrateWarnOnFewRecords|TestImportRouteLLMOnSharedData|TestTierOutputsNameTheirUnits|TestCalibratesPointIsARowOfTheCurves|TestMeetCI95FindsTheCheapestPolicyOffTheFront|TestCurvesSaysWhereEachRoutersFilesGo|TestMeetCI95AnswersArePinned)$$

# The whole suite, readme/ included: it runs every command block of
# README.md in a temporary copy of the repository.
test: vet
	TRIAGE_DATASETS=$(DATASETS) $(GO) test -race -count=1 ./...
	$(MAKE) --no-print-directory -j2 slow-pkgs slow-cmd

# The two slow lists side by side: one after the other, the second waited
# for the first's last package, which trains alone on one of two cores.
slow-pkgs:
	TRIAGE_DATASETS=$(DATASETS) $(GO) test -count=1 -run '$(SLOW_PKGS)' ./classifier ./models ./models/retrain ./models/report

slow-cmd:
	TRIAGE_DATASETS=$(DATASETS) $(GO) test -count=1 -run '$(SLOW_CMD)' ./cmd/triage

# Only the README's command blocks, with their output.
readme:
	TRIAGE_DATASETS=$(DATASETS) $(GO) test -count=1 -run TestREADME -v ./readme

vet:
	$(GO) vet ./...

bench:
	TRIAGE_DATASETS=$(DATASETS) $(GO) test -run '^$$' -bench . -benchmem ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

# A short fuzzing pass over every decoder: each Fuzz target in the tree for
# FUZZTIME (make fuzz FUZZTIME=5m for a longer one); .ci/fuzz says how a
# known Go 1.26 coordinator race is told from a finding.
FUZZTIME ?= 30s
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) bash .ci/fuzz

clean:
	rm -rf bin out
