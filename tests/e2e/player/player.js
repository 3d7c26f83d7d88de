// Plays one live stream with hls.js, dash.js or Shaka Player and keeps playback statistics in window.__stats.
//
// Query parameters: kind=hls|dash|shaka, src=<manifest URL>, lowLatency=0|1, liveDelay=<seconds> (optional).
// window.__snapshot() returns a JSON-ready copy of the statistics, an ongoing stall included.
'use strict';

(() => {
  const params = new URLSearchParams(location.search);
  const kind = params.get('kind');
  const src = params.get('src');
  const lowLatency = params.get('lowLatency') === '1';
  const liveDelay = params.has('liveDelay') ? Number(params.get('liveDelay')) : null;
  const video = document.getElementById('video');
  const statusLine = document.getElementById('status');
  const SAMPLE_MS = 250;
  const MAX_ENTRIES = 100;
  const CODECS = [
    'video/mp4; codecs="avc1.64001f"',
    'video/mp4; codecs="avc1.4d401f"',
    'video/mp4; codecs="avc1.42c01f"',
    'audio/mp4; codecs="mp4a.40.2"',
    'video/mp4; codecs="hvc1.1.6.L93.B0"',
    'video/mp2t; codecs="avc1.64001f,mp4a.40.2"',
  ];

  const stats = {
    kind,
    src,
    lowLatency,
    player: null, // "hls.js 1.x" | "dash.js 5.x" | "Shaka Player v5.x"
    pageStartEpochMs: Date.now(),
    startupMs: null, // page start -> first 'playing'
    playbackStartedEpochMs: null,
    watchedS: 0, // wall seconds since playback started
    mediaPlayedS: 0, // currentTime advance since playback started, seeks excluded
    currentTime: null,
    bufferAheadS: null,
    playbackRate: null,
    videoWidth: 0,
    videoHeight: 0,
    droppedFrames: null,
    totalFrames: null,
    stallCount: 0, // stalls after playback started (merged across the sources below)
    stalledMs: 0,
    stalls: [], // {atS: wall s after start, durationMs, sources: [...], ongoing}
    waitingEvents: 0, // <video> 'waiting' while not seeking, after start
    playerStallEvents: 0, // hls.js bufferStalledError / dash.js playbackStalled / Shaka buffering, after start
    fatalErrors: [],
    errors: [], // non-fatal player errors (first MAX_ENTRIES)
    fragmentsLoaded: 0,
    latencyS: null, // hls.js hls.latency | dash.js player.getCurrentLiveLatency() | Shaka stats.liveLatency
    latency: { samples: 0, sum: 0, min: null, max: null },
    pdtLatencyS: null, // hls.js playingDate / Shaka getPlayheadTimeAsDate(): Date.now() minus the PDT played
    pdtLatency: { samples: 0, sum: 0, min: null, max: null },
    targetLatencyS: null,
    codecSupport: {},
    events: [], // <video> events after playback started: [wall s, type, currentTime, readyState] (first 200)
  };
  window.__stats = stats;

  const sinceStartS = () => (performance.now() - startedPerfMs) / 1000;
  let startedPerfMs = null;
  let openStall = null; // {startMs, position: currentTime when it began, sources: Set}
  let lastCurrentTime = null;
  let lastSampleMs = null;
  let player = null;

  function note(list, entry) {
    if (list.length < MAX_ENTRIES) list.push({ atS: startedPerfMs === null ? null : sinceStartS(), ...entry });
  }

  function fatal(entry) {
    note(stats.fatalErrors, entry);
  }

  function beginStall(source) {
    if (startedPerfMs === null) return; // startup buffering is not a stall
    if (source === 'waiting') stats.waitingEvents += 1;
    else stats.playerStallEvents += 1;
    if (openStall) openStall.sources.add(source);
    else openStall = { startMs: performance.now(), position: video.currentTime, sources: new Set([source]) };
  }

  function stallRecord(stall, ongoing) {
    return {
      atS: (stall.startMs - startedPerfMs) / 1000,
      durationMs: performance.now() - stall.startMs,
      sources: [...stall.sources],
      ongoing,
    };
  }

  function endStall() {
    if (!openStall) return;
    const record = stallRecord(openStall, false);
    openStall = null;
    if (record.durationMs <= 0) return;
    stats.stallCount += 1;
    stats.stalledMs += record.durationMs;
    if (stats.stalls.length < MAX_ENTRIES) stats.stalls.push(record);
  }

  function addSample(aggregate, value) {
    if (value === null || !Number.isFinite(value)) return;
    aggregate.samples += 1;
    aggregate.sum += value;
    aggregate.min = aggregate.min === null ? value : Math.min(aggregate.min, value);
    aggregate.max = aggregate.max === null ? value : Math.max(aggregate.max, value);
  }

  function bufferAhead() {
    const ranges = video.buffered;
    for (let i = 0; i < ranges.length; i += 1) {
      if (ranges.start(i) <= video.currentTime + 0.1 && video.currentTime <= ranges.end(i)) {
        return ranges.end(i) - video.currentTime;
      }
    }
    return 0;
  }

  function readLatency() {
    if (kind === 'hls' && player) {
      stats.latencyS = Number.isFinite(player.latency) ? player.latency : null;
      stats.targetLatencyS = player.targetLatency;
      const date = player.playingDate;
      stats.pdtLatencyS = date ? (Date.now() - date.getTime()) / 1000 : null;
    } else if (kind === 'dash' && player) {
      const latency = player.getCurrentLiveLatency();
      stats.latencyS = Number.isFinite(latency) && latency > 0 ? latency : null;
      stats.targetLatencyS = player.getTargetLiveDelay ? player.getTargetLiveDelay() : null;
    } else if (kind === 'shaka' && player) {
      const latency = player.getStats().liveLatency;
      stats.latencyS = Number.isFinite(latency) && latency > 0 ? latency : null;
      const date = player.getPlayheadTimeAsDate();
      stats.pdtLatencyS = date ? (Date.now() - date.getTime()) / 1000 : null;
    }
  }

  function sample() {
    const now = performance.now();
    const currentTime = video.currentTime;
    stats.currentTime = currentTime;
    stats.playbackRate = video.playbackRate;
    stats.videoWidth = video.videoWidth;
    stats.videoHeight = video.videoHeight;
    stats.bufferAheadS = bufferAhead();
    const quality = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : null;
    if (quality) {
      stats.droppedFrames = quality.droppedVideoFrames;
      stats.totalFrames = quality.totalVideoFrames;
    }
    if (startedPerfMs !== null) {
      stats.watchedS = sinceStartS();
      if (lastCurrentTime !== null && !video.seeking) {
        const advance = currentTime - lastCurrentTime;
        const bound = ((now - lastSampleMs) / 1000) * Math.max(1, video.playbackRate) * 1.5 + 0.05;
        if (advance > 0 && advance <= bound) {
          stats.mediaPlayedS += advance;
          // Moving again past where it stopped, without a 'playing' event.
          if (openStall && !video.paused && currentTime > openStall.position) endStall();
        }
      }
      lastCurrentTime = video.seeking ? null : currentTime;
      lastSampleMs = now;
      readLatency();
      addSample(stats.latency, stats.latencyS);
      addSample(stats.pdtLatency, stats.pdtLatencyS);
    }
    statusLine.textContent =
      `${stats.player || kind} t=${currentTime.toFixed(2)} played=${stats.mediaPlayedS.toFixed(1)}s ` +
      `stalls=${stats.stallCount}${openStall ? '+' : ''} latency=${stats.latencyS?.toFixed(2)} ` +
      `pdtLatency=${stats.pdtLatencyS?.toFixed(2)} ${stats.videoWidth}x${stats.videoHeight} ` +
      `errors=${stats.fatalErrors.length}`;
  }

  window.__snapshot = () => {
    sample();
    const copy = JSON.parse(JSON.stringify(stats));
    if (openStall) {
      const record = stallRecord(openStall, true);
      if (record.durationMs > 0) {
        copy.stallCount += 1;
        copy.stalledMs += record.durationMs;
        copy.stalls.push(record);
      }
    }
    return copy;
  };

  for (const type of ['playing', 'waiting', 'seeking', 'seeked', 'pause', 'ended', 'stalled', 'canplay']) {
    video.addEventListener(type, () => {
      if (startedPerfMs !== null && stats.events.length < 200) {
        stats.events.push([+sinceStartS().toFixed(3), type, +video.currentTime.toFixed(3), video.readyState]);
      }
    });
  }
  video.addEventListener('playing', () => {
    if (startedPerfMs === null) {
      startedPerfMs = performance.now();
      stats.startupMs = startedPerfMs;
      stats.playbackStartedEpochMs = Date.now();
      lastCurrentTime = video.currentTime;
      lastSampleMs = startedPerfMs;
    }
    endStall();
  });
  video.addEventListener('waiting', () => {
    if (!video.seeking) beginStall('waiting');
  });
  video.addEventListener('seeking', () => {
    lastCurrentTime = null;
  });
  video.addEventListener('error', () => {
    const error = video.error;
    fatal({ source: 'video', code: error ? error.code : null, message: error ? error.message : '' });
  });
  window.addEventListener('error', (event) => fatal({ source: 'window', message: String(event.message) }));
  window.addEventListener('unhandledrejection', (event) =>
    note(stats.errors, { source: 'promise', message: String(event.reason) }),
  );

  function startPlayback() {
    video.play().catch((error) => note(stats.errors, { source: 'play()', message: String(error) }));
  }

  function startHls() {
    const Hls = window.Hls;
    if (!Hls || !Hls.isSupported()) {
      fatal({ source: 'hls.js', message: 'hls.js missing or MSE unsupported' });
      return;
    }
    stats.player = `hls.js ${Hls.version}`;
    const config = { lowLatencyMode: lowLatency, enableWorker: true, debug: false };
    // Low latency as deployed: after a stall, play up to 10 % faster back to the target latency
    // (hls.js's default of 1 never catches up; dash.js and Shaka catch up by default in LL mode).
    if (lowLatency) config.maxLiveSyncPlaybackRate = 1.1;
    if (liveDelay !== null) config.liveSyncDuration = liveDelay;
    player = new Hls(config);
    player.on(Hls.Events.ERROR, (_event, data) => {
      const entry = { source: 'hls.js', type: data.type, details: data.details, reason: String(data.reason || '') };
      if (data.response && data.response.code) entry.httpStatus = data.response.code;
      if (data.fatal) fatal(entry);
      else note(stats.errors, entry);
      if (data.details === Hls.ErrorDetails.BUFFER_STALLED_ERROR) beginStall('hls.bufferStalledError');
    });
    player.on(Hls.Events.FRAG_LOADED, () => {
      stats.fragmentsLoaded += 1;
    });
    player.on(Hls.Events.MANIFEST_PARSED, startPlayback);
    player.loadSource(src);
    player.attachMedia(video);
  }

  function startDash() {
    const dashjs = window.dashjs;
    if (!dashjs) {
      fatal({ source: 'dash.js', message: 'dash.js missing' });
      return;
    }
    player = dashjs.MediaPlayer().create();
    stats.player = `dash.js ${player.getVersion()}`;
    const streaming = {
      // Without a UTCTiming in the MPD dash.js would ask time.akamai.com; ask this page's server instead.
      utcSynchronization: {
        defaultTimingSource: { scheme: 'urn:mpeg:dash:utc:http-xsdate:2014', value: `${location.origin}/time` },
      },
      liveCatchup: { enabled: lowLatency },
    };
    if (liveDelay !== null) streaming.delay = { liveDelay };
    player.updateSettings({ debug: { logLevel: dashjs.Debug.LOG_LEVEL_WARNING }, streaming });
    const events = dashjs.MediaPlayer.events;
    player.on(events.ERROR, (event) => {
      const error = event.error || {};
      fatal({ source: 'dash.js', code: error.code ?? null, message: String(error.message || '') });
    });
    player.on(events.PLAYBACK_ERROR, (event) => fatal({ source: 'dash.js playback', message: String(event.error) }));
    player.on(events.PLAYBACK_STALLED, () => beginStall('dash.playbackStalled'));
    player.on(events.FRAGMENT_LOADING_COMPLETED, () => {
      stats.fragmentsLoaded += 1;
    });
    player.initialize(video, src, true);
  }

  function startShaka() {
    const shaka = window.shaka;
    if (!shaka) {
      fatal({ source: 'shaka', message: 'Shaka Player missing' });
      return;
    }
    shaka.polyfill.installAll();
    if (!shaka.Player.isBrowserSupported()) {
      fatal({ source: 'shaka', message: 'browser not supported' });
      return;
    }
    player = new shaka.Player();
    stats.player = `Shaka Player ${shaka.Player.version}`;
    const streaming = { lowLatencyMode: lowLatency };
    if (liveDelay !== null) streaming.liveSync = { enabled: true, targetLatency: liveDelay };
    player.configure({ streaming });
    player.addEventListener('error', (event) => {
      const error = event.detail || {};
      const entry = { source: 'shaka', code: error.code ?? null, category: error.category ?? null, message: String(error.message || '') };
      if (error.severity === shaka.util.Error.Severity.CRITICAL) fatal(entry);
      else note(stats.errors, entry);
    });
    player.addEventListener('buffering', (event) => {
      if (event.buffering) beginStall('shaka.buffering');
    });
    player.addEventListener('segmentappended', () => {
      stats.fragmentsLoaded += 1;
    });
    player
      .attach(video)
      .then(() => player.load(src))
      .then(startPlayback)
      .catch((error) => fatal({ source: 'shaka load', code: error.code ?? null, message: String(error.message || error) }));
  }

  for (const codec of CODECS) {
    stats.codecSupport[codec] = window.MediaSource ? MediaSource.isTypeSupported(codec) : false;
  }
  setInterval(sample, SAMPLE_MS);
  if (!src && kind !== 'probe') fatal({ source: 'page', message: 'missing src parameter' });
  else if (kind === 'hls') startHls();
  else if (kind === 'dash') startDash();
  else if (kind === 'shaka') startShaka();
  else if (kind === 'probe') stats.player = 'probe'; // codec support only
  else fatal({ source: 'page', message: `unknown kind ${kind}` });
})();
