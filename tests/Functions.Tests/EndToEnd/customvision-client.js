// Custom Vision client code as Microsoft's quickstart writes it, with Microsoft's npm client: only the endpoint and the
// key differ (from the environment). Prints one JSON line per call: {call, ok, body} or {call, ok: false, status, body}.
// Run by EndToEndTests.CustomVisionClient_ClassifiesAgainstTheApp (node resolves the client from the repository's node_modules).
"use strict";
const fs = require("fs");
const msRest = require("@azure/ms-rest-js");
const PredictionApi = require("@azure/cognitiveservices-customvision-prediction");

const predictionEndpoint = process.env.CV_ENDPOINT;
const predictionKey = process.env.CV_KEY;
const projectId = process.env.CV_PROJECT;
const publishIterationName = process.env.CV_ITERATION;

async function call(name, action) {
  try {
    const body = await action();
    console.log(JSON.stringify({ call: name, ok: true, body }));
  } catch (e) {
    console.log(JSON.stringify({ call: name, ok: false, status: e.statusCode, body: e.body }));
  }
}

(async () => {
  const credentials = new msRest.ApiKeyCredentials({ inHeader: { "Prediction-key": predictionKey } });
  const predictor = new PredictionApi.PredictionAPIClient(credentials, predictionEndpoint);
  const image = fs.readFileSync(process.env.CV_IMAGE);
  await call("classifyImage", () => predictor.classifyImage(projectId, publishIterationName, image));
  await call("classifyImageWithNoStore", () => predictor.classifyImageWithNoStore(projectId, publishIterationName, image));
  await call("classifyImageUrl", () => predictor.classifyImageUrl(projectId, publishIterationName, { url: process.env.CV_IMAGE_URL }));
  await call("classifyImageUrlWithNoStore", () => predictor.classifyImageUrlWithNoStore(projectId, publishIterationName, { url: "http://example.invalid/cat.png" }));
  const wrong = new PredictionApi.PredictionAPIClient(new msRest.ApiKeyCredentials({ inHeader: { "Prediction-key": "not-the-key" } }), predictionEndpoint);
  await call("wrongKey", () => wrong.classifyImage(projectId, publishIterationName, image));
  await call("unknownProject", () => predictor.classifyImage("00000000-0000-0000-0000-000000000001", publishIterationName, image));
})();
