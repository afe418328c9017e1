"""`reconciler import` for The Things Stack: live servers (`live`) and the Console's JSON and
CSV export/import files (`files`) into records of TTS field paths (`fields`), written as
manifests in the documented manifest language (`manifests`)."""
