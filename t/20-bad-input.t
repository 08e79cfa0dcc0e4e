# Malformed, oversized and wrong-type requests get a clear error and
# change nothing.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Apache::Test qw(-withtestmore);
use DmeTest;

plan tests => 26;

my ($res, $client) = enrol('alice', 'alice-secret');
is($res->code, 201, 'enrolled');
$res = sync_req(client => $client);
is($res->code, 200, 'imported');
my $key = parse_sync($res->decoded_content)->{key};

my @cases = (
    ['not XML', 'hello', 400],
    ['truncated', '<sync xmlns="urn:dme:1"><client>', 400],
    ['wrong root', '<enrol xmlns="urn:dme:1"/>', 400],
    ['wrong namespace', "<sync xmlns=\"urn:other\"><client>$client</client>"
        . '<type>import</type></sync>', 400],
    ['entity bomb', '<?xml version="1.0"?><!DOCTYPE s [<!ENTITY a "aaaa">'
        . '<!ENTITY b "&a;&a;&a;&a;">]><sync xmlns="urn:dme:1"><client>&b;'
        . '</client><type>import</type></sync>', 400],
    ['nested element', "<sync xmlns=\"urn:dme:1\"><client><x/></client>"
        . '<type>import</type></sync>', 400],
    ['unknown type', "<sync xmlns=\"urn:dme:1\"><client>$client</client>"
        . '<type>everything</type></sync>', 400],
    ['bad key', "<sync xmlns=\"urn:dme:1\"><client>$client</client>"
        . '<type>manual</type><key>1x</key></sync>', 400],
    ['key missing', "<sync xmlns=\"urn:dme:1\"><client>$client</client>"
        . '<type>manual</type></sync>', 400],
    ['folder with CR', "<sync xmlns=\"urn:dme:1\"><client>$client</client>"
        . "<type>import</type><folder>IN&#13;BOX</folder></sync>", 400],
);
for my $c (@cases) {
    $res = request(path => '/dme/sync', user => 'alice',
                   password => 'alice-secret', body => $c->[1]);
    is($res->code, $c->[2], "$c->[0]: $c->[2]");
}

$res = request(path => '/dme/sync', user => 'alice',
               password => 'alice-secret', body => '<sync/>' . (' ' x 70000));
is($res->code, 413, 'oversized body: 413');
like($res->decoded_content, qr/code="too-large"/, 'says too large');
$res = request(path => '/dme/sync', user => 'alice', type => 'text/plain',
               password => 'alice-secret',
               body => "<sync xmlns=\"urn:dme:1\"><client>$client</client>"
                       . '<type>import</type></sync>');
is($res->code, 415, 'wrong content type: 415');
$res = request(path => '/dme/sync', user => 'alice',
               type => 'application/xmlfoo', password => 'alice-secret',
               body => "<sync xmlns=\"urn:dme:1\"><client>$client</client>"
                       . '<type>import</type></sync>');
is($res->code, 415, 'a look-alike content type: 415');
$res = request(path => '/dme/sync', user => 'alice',
               password => 'alice-secret',
               body => "<sync xmlns=\"urn:dme:1\"><client>$client</client>"
                       . '<type>import</type><bogus>1</bogus></sync>');
is($res->code, 400, 'an unknown child element: 400');
$res = request(path => '/dme/sync', user => 'alice',
               password => 'alice-secret',
               body => "<sync xmlns=\"urn:dme:1\"><client>$client</client>"
                       . '<type>manual</type><key>+5</key></sync>');
is($res->code, 400, 'a key with a sign: 400');
$res = request(method => 'TRACE', path => '/dme/sync', user => 'alice',
               password => 'alice-secret');
is($res->code, 405, 'TRACE is off (it would echo the credentials)');
$res = request(method => 'GET', path => '/dme/sync', user => 'alice',
               password => 'alice-secret');
is($res->code, 405, 'GET on sync: 405');
is($res->header('Allow'), 'POST', 'Allow: POST');
$res = request(path => '/dme/nothing', user => 'alice',
               password => 'alice-secret', body => '<x/>');
is($res->code, 404, 'unknown resource: 404');
like($res->header('Content-Type'), qr{^application/xml}, 'errors are XML');

# Nothing above changed the state: the key still syncs, with no change.
$res = sync_req(client => $client, key => $key);
is($res->code, 200, 'the last good key still works');
my $s = parse_sync($res->decoded_content);
is(scalar(@{$s->{adds}}) + @{$s->{deletes}}, 0, 'and nothing changed');
is($s->{key}, $key, 'and the key stayed, nothing changed');
