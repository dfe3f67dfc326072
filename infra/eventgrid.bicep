// The Event Grid subscription that feeds the blob trigger (ClassifyUploadedImageEventGrid), as a deployment
// of its own: run it after infra/main.bicep, after the Functions code is published, and once
// GET /api/health answers (docs/deploy.md step 3, scripts/deploy-eventgrid.sh). It only reads the site (its
// blobs_extension key) and writes the subscription, so the app does not restart under Event Grid's
// validation handshake, which a deployment that also rewrites the site's settings cannot promise.
// Safe to run again (the subscription is updated in place), so a failed handshake is simply retried.
targetScope = 'resourceGroup'

@description('Name of the Functions app (output FUNCTION_APP_NAME of infra/main.bicep).')
param functionAppName string

@description('Event Grid system topic of the storage account (output EVENT_GRID_SYSTEM_TOPIC_NAME of infra/main.bicep).')
param systemTopicName string

@description('Container whose new blobs are classified (output IMAGES_CONTAINER_NAME of infra/main.bicep).')
param imagesContainerName string = 'images'

@description('Name of the event subscription.')
param subscriptionName string = 'classify-uploaded-images'

module subscription 'modules/eventGridSubscription.bicep' = {
  name: 'eventGridSubscription'
  params: {
    systemTopicName: systemTopicName
    name: subscriptionName
    functionAppName: functionAppName
    functionName: 'ClassifyUploadedImageEventGrid'
    imagesContainerName: imagesContainerName
  }
}

output EVENT_GRID_SUBSCRIPTION_NAME string = subscription.outputs.name
