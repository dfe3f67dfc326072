// Delivers BlobCreated events for the images container to the Functions blob extension's webhook,
// which runs ClassifyUploadedImageEventGrid (the Event Grid-source blob trigger; the only kind
// Flex Consumption supports). Deployed by infra/eventgrid.bicep, on its own, after the code is
// published and the app answers: the webhook needs the host's blobs_extension system key, which the
// Functions runtime creates when it first starts with the code deployed, and Event Grid validates the
// endpoint when the subscription is created. The key is read with listKeys and goes only into the
// subscription's endpoint, never into an output. Nothing here changes the site.

@description('System topic name (from eventGridTopic.bicep).')
param systemTopicName string

@description('Subscription name.')
param name string

@description('Name of the Functions app.')
param functionAppName string

@description('Name of the function that the events run (the Event Grid-source blob trigger).')
param functionName string

@description('Container whose new blobs are classified.')
param imagesContainerName string

resource topic 'Microsoft.EventGrid/systemTopics@2025-02-15' existing = {
  name: systemTopicName
}

resource site 'Microsoft.Web/sites@2024-11-01' existing = {
  name: functionAppName
}

// Microsoft.Web/sites/host has no Bicep type definitions, so the host keys are listed with the
// listKeys function on the resource id (the same call `az functionapp keys list` makes).
var blobsExtensionKey = listKeys('${site.id}/host/default', '2024-11-01').systemKeys.blobs_extension

resource subscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2025-02-15' = {
  parent: topic
  name: name
  properties: {
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: 'https://${site.properties.defaultHostName}/runtime/webhooks/blobs?functionName=Host.Functions.${functionName}&code=${blobsExtensionKey}'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobCreated'
      ]
      subjectBeginsWith: '/blobServices/default/containers/${imagesContainerName}/'
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}

output name string = subscription.name
