// Reads a .dawproject with openDAW's DAWproject schema classes (@opendaw/lib-dawproject) and
// prints what it found as JSON: the independent reader of tests/test_dawproject.py.
import { DOMParser } from "linkedom";
import JSZip from "jszip";
import { readFileSync } from "node:fs";
import { Xml } from "@opendaw/lib-xml";
import { ProjectSchema, MetaDataSchema } from "@opendaw/lib-dawproject";
globalThis.DOMParser = DOMParser;
const zip = await JSZip.loadAsync(readFileSync(process.argv[2]));
const project = Xml.parse(await zip.file("project.xml").async("string"), ProjectSchema);
const meta = Xml.parse(await zip.file("metadata.xml").async("string"), MetaDataSchema);
console.log(JSON.stringify({ project, meta, files: Object.keys(zip.files) }, null, 1));
