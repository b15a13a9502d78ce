// Election Day Peak: exported by `surge-load export-k6`; regenerate rather than edit.
// Run: k6 run script.js (SURGE_TARGET and SURGE_CREDENTIALS override the defaults).
import http from 'k6/http';
import { sleep } from 'k6';
import exec from 'k6/execution';
import { SharedArray } from 'k6/data';
const SCENARIO = {
  "client_ips": null,
  "elections": [
    1
  ],
  "keys": 1,
  "model": "closed",
  "name": "Election Day Peak",
  "options": [
    1,
    2,
    3
  ],
  "steps": [
    {
      "auth": false,
      "body": "{\"voter_id\": \"{voter}\", \"code\": \"{code}\"}",
      "expect": [
        200
      ],
      "method": "POST",
      "name": "login",
      "path": "/api/login",
      "weight": 10
    },
    {
      "auth": false,
      "body": null,
      "expect": [
        200
      ],
      "method": "GET",
      "name": "view_ballot",
      "path": "/api/elections/{election}/ballot",
      "weight": 30
    },
    {
      "auth": true,
      "body": "{\"option_id\": {option}}",
      "expect": [
        201,
        200,
        409
      ],
      "method": "POST",
      "name": "cast_vote",
      "path": "/api/elections/{election}/votes",
      "weight": 40
    },
    {
      "auth": false,
      "body": null,
      "expect": [
        200
      ],
      "method": "GET",
      "name": "view_results",
      "path": "/api/elections/{election}/results",
      "weight": 20
    }
  ],
  "think_s": 5.0,
  "timeout": "30000ms"
};
const TARGET = (__ENV.SURGE_TARGET || "https://vote.example").replace(/\/+$/, '');
const CREDENTIALS = __ENV.SURGE_CREDENTIALS || "";
export const options = {
  "discardResponseBodies": true,
  "scenarios": {
    "surge": {
      "executor": "ramping-vus",
      "gracefulRampDown": "0s",
      "gracefulStop": "0s",
      "stages": [
        {
          "duration": "300000ms",
          "target": 100000
        },
        {
          "duration": "3300000ms",
          "target": 100000
        }
      ],
      "startVUs": 0
    }
  },
  "summaryTrendStats": [
    "avg",
    "min",
    "med",
    "p(95)",
    "p(99)",
    "p(99.9)",
    "max"
  ],
  "thresholds": {
    "http_req_duration": [
      "p(99)<1000",
      "p(50)<100"
    ],
    "http_req_failed": [
      "rate<0.001"
    ]
  }
};

const voters = new SharedArray('voters', function () {
  if (!CREDENTIALS) return [];
  const lines = open(CREDENTIALS).split('\n');
  if ((lines[0] || '').trim() !== 'voter_id,code') {
    throw new Error(`${CREDENTIALS}: the first line must be voter_id,code (the file surge-origin voters issue --out writes)`);
  }
  return lines.slice(1).filter((l) => l.trim() !== '').map((l) => {
    const [voter_id, code] = l.trim().split(',');
    return { voter_id, code };
  });
});

if (SCENARIO.steps.some((s) => s.auth || /\{voter\}|\{code\}/.test(s.path + (s.body || ''))) && voters.length === 0) {
  throw new Error('this scenario logs voters in: set SURGE_CREDENTIALS to a voter_id,code file (surge-origin voters issue --out)');
}

const TOTAL = SCENARIO.steps.reduce((sum, s) => sum + s.weight, 0);
// What each step may answer: its own list, or (unset) anything but no answer, a 5xx or a 429.
const EXPECTED = Object.fromEntries(SCENARIO.steps.map((s) => [
  s.name,
  s.expect ? http.expectedStatuses(...s.expect) : http.expectedStatuses({ min: 100, max: 428 }, { min: 430, max: 499 }),
]));
const LOGIN_OK = http.expectedStatuses(200);

function pick() {
  let draw = Math.floor(Math.random() * TOTAL);
  for (const s of SCENARIO.steps) {
    if (draw < s.weight) return s;
    draw -= s.weight;
  }
  return SCENARIO.steps[SCENARIO.steps.length - 1];
}

function any(list) {
  return list[Math.floor(Math.random() * list.length)];
}

function fill(text, voter) {
  return text
    .split('{election}').join(String(any(SCENARIO.elections)))
    .split('{option}').join(String(any(SCENARIO.options)))
    .split('{voter}').join(voter ? voter.voter_id : '')
    .split('{code}').join(voter ? voter.code : '')
    .split('{key}').join(String(Math.floor(Math.random() * SCENARIO.keys)));
}

function send(method, path, body, cookie, step, expected) {
  const headers = {};
  if (body !== null) headers['content-type'] = 'application/json';
  if (cookie) headers['cookie'] = cookie;
  if (SCENARIO.client_ips) {
    const i = exec.scenario.iterationInTest % SCENARIO.client_ips;
    headers['cf-connecting-ip'] = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
  }
  return http.request(method, TARGET + path, body, {
    headers,
    tags: { step, name: step },
    responseCallback: expected,
    timeout: SCENARIO.timeout,
    // The session travels in the cookie header above, over http as over https.
    jar: new http.CookieJar(),
  });
}

function sessionOf(res) {
  const set = res.headers['Set-Cookie'];
  return set ? set.split(';')[0] : null;
}

// Per virtual user: its session. A closed-model user keeps its voter and session; each
// open-model arrival is a new visitor with the next voter.
let session = null;

export default function () {
  const closed = SCENARIO.model === 'closed';
  const n = closed ? exec.vu.idInTest - 1 : exec.scenario.iterationInTest;
  const voter = voters.length ? voters[n % voters.length] : null;
  if (!closed) session = null;
  const step = pick();
  let go = true;
  if (step.auth && session === null) {
    if (voter === null) {
      go = false;
    } else {
      const login = send('POST', '/api/login', JSON.stringify({ voter_id: voter.voter_id, code: voter.code }), null, 'login', LOGIN_OK);
      session = sessionOf(login);
      go = session !== null;
    }
  }
  if (go) {
    const body = step.body === null ? null : fill(step.body, voter);
    const res = send(step.method, fill(step.path, voter), body, step.auth ? session : null, step.name, EXPECTED[step.name]);
    const set = sessionOf(res);
    if (set) session = set;
    else if (step.auth && res.status === 401) session = null;
  }
  if (closed && SCENARIO.think_s > 0) sleep(SCENARIO.think_s);
}
