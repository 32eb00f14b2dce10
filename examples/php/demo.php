<?php
// callscope from PHP with nothing but ext-curl: the JSON API (Connect's unary
// protocol) on the HTTP port. Upserts calls, lists them with a filter page by
// page, reads a google.rpc.BadRequest, and exports the calls to CSV (through
// the ExportCalls NDJSON stream when the server has it, else by paging
// ListCalls).
//
//   php examples/php/demo.php [BASE_URL] [CSV_FILE]
//
// BASE_URL defaults to http://127.0.0.1:8080; CALLSCOPE_API_KEY, when set, is
// sent as `Authorization: Bearer`. Exits non-zero on any unexpected answer.

declare(strict_types=1);

$base = rtrim($argv[1] ?? 'http://127.0.0.1:8080', '/');
$csvPath = $argv[2] ?? 'php://stdout';
$key = getenv('CALLSCOPE_API_KEY') ?: null;

/** POSTs one JSON request; returns [HTTP status, decoded JSON answer]. */
function call(string $base, ?string $key, string $method, array $request): array
{
    $headers = ['Content-Type: application/json'];
    if ($key !== null) {
        $headers[] = "Authorization: Bearer $key";
    }
    $curl = curl_init("$base/$method");
    curl_setopt_array($curl, [
        CURLOPT_POST => true,
        // An empty PHP array would encode as `[]`: a request is an object.
        CURLOPT_POSTFIELDS => $request === [] ? '{}' : json_encode($request, JSON_UNESCAPED_UNICODE | JSON_THROW_ON_ERROR),
        CURLOPT_HTTPHEADER => $headers,
        CURLOPT_RETURNTRANSFER => true,
        CURLOPT_TIMEOUT => 30,
    ]);
    $body = curl_exec($curl);
    if ($body === false) {
        fail("$method: " . curl_error($curl));
    }
    $status = curl_getinfo($curl, CURLINFO_RESPONSE_CODE);
    curl_close($curl);
    return [$status, json_decode($body, true, 512, JSON_THROW_ON_ERROR)];
}

function fail(string $why): never
{
    fwrite(STDERR, "FAILED: $why\n");
    exit(1);
}

function check(bool $ok, string $why): void
{
    if (!$ok) {
        fail($why);
    }
}

// 1. Upsert: idempotent on (source, external_id); a re-run answers `unchanged`.
$calls = [];
foreach ([1, 2, 3] as $i) {
    $calls[] = [
        'source' => 'SOURCE_API',
        'externalId' => "php-$i",
        'taskId' => 'php-demo',
        'callee' => "1380013800$i",
        'callTime' => sprintf('2026-11-20T0%d:00:00Z', $i),
        'outcome' => $i === 2 ? 'CALL_OUTCOME_BUSY' : 'CALL_OUTCOME_ANSWERED',
        'talkMs' => (string) ($i * 1000),
        'tags' => [['id' => 'price', 'name' => '问价格']],
    ];
}
[$status, $answer] = call($base, $key, 'callscope.v1.IngestService/UpsertCalls', ['calls' => $calls]);
check($status === 200, "UpsertCalls answered $status: " . json_encode($answer));
$stored = ($answer['inserted'] ?? 0) + ($answer['unchanged'] ?? 0) + ($answer['updated'] ?? 0);
check($stored === 3, 'UpsertCalls stored ' . json_encode($answer));
echo "upserted: inserted " . ($answer['inserted'] ?? 0) . ", unchanged " . ($answer['unchanged'] ?? 0) . "\n";

// 2. List with a filter, one call per page, until the token comes back empty.
$ids = [];
$token = '';
$pages = 0;
do {
    $request = ['filter' => ['taskIds' => ['php-demo'], 'outcomes' => ['CALL_OUTCOME_ANSWERED']], 'pageSize' => 1];
    if ($token !== '') {
        $request['pageToken'] = $token;
    }
    [$status, $page] = call($base, $key, 'callscope.v1.CallService/ListCalls', $request);
    check($status === 200, "ListCalls answered $status: " . json_encode($page));
    foreach ($page['calls'] ?? [] as $c) {
        $ids[] = $c['externalId'];
    }
    $token = $page['nextPageToken'] ?? '';
    $pages++;
} while ($token !== '' && $pages < 100);
check($ids === ['php-3', 'php-1'], 'ListCalls listed ' . json_encode($ids));
echo "listed over $pages pages: " . implode(', ', $ids) . "\n";

// 3. A bad request: the Connect error names each bad field.
[$status, $error] = call($base, $key, 'callscope.v1.IngestService/UpsertCalls', ['calls' => [
    ['source' => 'SOURCE_API', 'externalId' => 'php-bad', 'callee' => 'no digits', 'callTime' => '2026-11-20T01:00:00Z'],
]]);
check($status === 400 && ($error['code'] ?? '') === 'invalid_argument', "bad call answered $status: " . json_encode($error));
$fields = [];
foreach ($error['details'] ?? [] as $detail) {
    if ($detail['type'] === 'google.rpc.BadRequest') {
        foreach ($detail['debug']['fieldViolations'] ?? [] as $v) {
            $fields[] = "{$v['field']}: {$v['description']}";
        }
    }
}
check($fields !== [] && str_starts_with($fields[0], 'calls[0].callee'), 'BadRequest: ' . json_encode($error));
echo "refused: " . implode('; ', $fields) . "\n";

// 4. Export to CSV.
$out = fopen($csvPath, 'w');
fputcsv($out, ['external_id', 'task_id', 'callee', 'call_time', 'outcome', 'talk_ms'], ',', '"', '');
$row = fn (array $c) => fputcsv($out, [
    $c['externalId'], $c['taskId'] ?? '', $c['callee'], $c['callTime'], $c['outcome'] ?? '', $c['talkMs'] ?? '0',
], ',', '"', '');
$filter = ['taskIds' => ['php-demo']];
$openapi = json_decode((string) file_get_contents("$base/openapi.json"), true);
$exported = 0;
if (isset($openapi['paths']['/callscope.v1.CallService/ExportCalls'])) {
    // NDJSON: one ExportCallsResponse per line, each with its resume token.
    $buffer = '';
    $curl = curl_init("$base/callscope.v1.CallService/ExportCalls");
    curl_setopt_array($curl, [
        CURLOPT_POST => true,
        CURLOPT_POSTFIELDS => json_encode(['filter' => $filter]),
        CURLOPT_HTTPHEADER => array_merge(['Content-Type: application/json'], $key ? ["Authorization: Bearer $key"] : []),
        CURLOPT_WRITEFUNCTION => function ($curl, string $chunk) use (&$buffer, &$exported, $row) {
            $buffer .= $chunk;
            while (($nl = strpos($buffer, "\n")) !== false) {
                $line = json_decode(substr($buffer, 0, $nl), true, 512, JSON_THROW_ON_ERROR);
                $buffer = substr($buffer, $nl + 1);
                if (isset($line['error'])) {
                    fail('ExportCalls: ' . json_encode($line['error']));
                }
                foreach ($line['calls'] ?? [] as $c) {
                    $row($c);
                    $exported++;
                }
            }
            return strlen($chunk);
        },
    ]);
    check(curl_exec($curl) !== false, 'ExportCalls: ' . curl_error($curl));
    $status = curl_getinfo($curl, CURLINFO_RESPONSE_CODE);
    check($status === 200, "ExportCalls answered $status: $buffer");
    $how = 'ExportCalls (NDJSON)';
} else {
    $token = '';
    do {
        $request = ['filter' => $filter, 'pageSize' => 1000] + ($token !== '' ? ['pageToken' => $token] : []);
        [$status, $page] = call($base, $key, 'callscope.v1.CallService/ListCalls', $request);
        check($status === 200, "ListCalls answered $status");
        foreach ($page['calls'] ?? [] as $c) {
            $row($c);
            $exported++;
        }
        $token = $page['nextPageToken'] ?? '';
    } while ($token !== '');
    $how = 'ListCalls pages';
}
fclose($out);
check($exported === 3, "exported $exported calls");
fwrite(STDERR, "exported $exported calls to CSV through $how\n");
echo "OK\n";
