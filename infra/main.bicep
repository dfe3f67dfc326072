// ServerlessClassifier: everything it needs in one resource group.
//   storage (identity only) ── Functions app on Flex Consumption (serves the model; blob trigger via Event Grid)
//                          └── Container Apps job on a serverless GPU (TrainJob: trains and publishes models)
//   Application Insights + Log Analytics, a container registry for the TrainJob image.
// The Event Grid subscription that feeds the blob trigger is a separate template (infra/eventgrid.bicep),
// deployed once the app's code is published and answering: this deployment rewrites the site and its
// app settings (the app restarts), and Event Grid's validation handshake against a restarting app fails.
// Deploy: docs/deploy.md. Validated with `bicep build` and `bicep lint` (tests/Infra.Tests).
targetScope = 'resourceGroup'

@description('Short name of this deployment (e.g. classifier-dev); part of every resource name.')
@minLength(2)
@maxLength(20)
param environmentName string

@description('Azure region for every resource. Pick one with Flex Consumption and serverless GPUs for Container Apps.')
param location string = resourceGroup().location

@description('Flex Consumption memory per instance in MB.')
@allowed([
  512
  2048
  4096
])
param functionInstanceMemoryMB int = 2048

@description('Most instances the Functions app scales out to.')
@minValue(1)
@maxValue(1000)
param functionMaximumInstanceCount int = 40

@description('Serverless GPU workload profile type for training.')
@allowed([
  'Consumption-GPU-NC8as-T4'
  'Consumption-GPU-NC24-A100'
])
param gpuWorkloadProfileType string = 'Consumption-GPU-NC8as-T4'

@description('Container registry tier. Basic: cheapest; every training run pulls the whole CUDA image (several GB) before it starts. Premium: about ten times the daily charge, and artifact streaming (enabled per repository after the first push, docs/deploy.md), which starts the job while the image streams in.')
@allowed([
  'Basic'
  'Standard'
  'Premium'
])
param containerRegistrySku string = 'Basic'

@description('vCPUs for the training container (T4 profile: up to 8).')
param trainJobCpu int = 8

@description('Memory for the training container (T4 profile: up to 56Gi).')
param trainJobMemory string = '56Gi'

@description('Tag of <registry>/serverless-classifier-trainjob to run. Empty (first deployment, before `az acr build`): a public placeholder image that must not be started.')
param trainJobImageTag string = ''

@description('TrainJob CLI arguments.')
param trainJobArgs string[] = [
  'train'
  '--data'
  'training'
  '--output'
  '/tmp/model'
  '--mode'
  'head'
  '--publish'
  '--device'
  'auto'
]

@description('Longest a training run may take, in seconds.')
@minValue(60)
param trainJobTimeoutSeconds int = 14400

@description('Application (client) id of the Entra app registration for the review page\'s sign-in (app roles Reviewer and Approver; docs/deploy.md, "Review sign-in"). Empty: review sign-in off (the review API answers 503); everything else works.')
param reviewSignInClientId string = ''

@description('Optional object id of the person or group who uploads training data (gets Storage Blob Data Contributor). Empty: none.')
param operatorPrincipalId string = ''

@description('Principal type of operatorPrincipalId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param operatorPrincipalType string = 'User'

@description('Tags for every resource.')
param tags { *: string } = {}

var resourceToken = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
// Lower case: Container Apps and several other resource names accept nothing else.
var nameStem = toLower(environmentName)
var allTags = union(tags, { 'azd-env-name': environmentName, application: 'serverless-classifier' })

// Container names: the storage contract of docs/architecture.md, plus the Flex Consumption package container.
var imagesContainerName = 'images'
var predictionsContainerName = 'predictions'
var modelsContainerName = 'models'
var trainingContainerName = 'training'
var jobsContainerName = 'jobs'
// Head-mode features kept between training runs (train --feature-cache), written by the features shards too.
var featuresContainerName = 'features'
// The shard queue of `trainjob classify --container --distributed`, consumed by the app's ClassifyShard.
var shardQueueName = 'classify-shards'
var deploymentContainerName = 'app-package-${resourceToken}'

// Names are computed here, not taken from module outputs, so What-If can predict every resource.
var storageAccountName = 'st${resourceToken}'
var appInsightsName = 'appi-${nameStem}-${resourceToken}'
var functionAppName = 'func-${nameStem}-${resourceToken}'
var systemTopicName = 'evgt-${nameStem}-${resourceToken}'
var registryName = 'cr${resourceToken}'
var trainJobImageRepository = 'serverless-classifier-trainjob'
// Placeholder until the first `az acr build`: a small public sample image (never started by us).
var placeholderImage = 'mcr.microsoft.com/k8se/quickstart-jobs:latest'

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: allTags
    logAnalyticsName: 'log-${nameStem}-${resourceToken}'
    appInsightsName: appInsightsName
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    tags: allTags
    name: storageAccountName
    containerNames: [
      imagesContainerName
      predictionsContainerName
      modelsContainerName
      trainingContainerName
      jobsContainerName
      featuresContainerName
      deploymentContainerName
    ]
    queueNames: [
      shardQueueName
    ]
    operatorPrincipalId: operatorPrincipalId
    operatorPrincipalType: operatorPrincipalType
  }
}

module functionApp 'modules/functionApp.bicep' = {
  name: 'functionApp'
  dependsOn: [
    storage
    monitoring
  ]
  params: {
    location: location
    tags: union(allTags, { 'azd-service-name': 'functions' })
    name: functionAppName
    planName: 'plan-${nameStem}-${resourceToken}'
    storageAccountName: storageAccountName
    deploymentContainerName: deploymentContainerName
    appInsightsName: appInsightsName
    instanceMemoryMB: functionInstanceMemoryMB
    maximumInstanceCount: functionMaximumInstanceCount
    imagesContainerName: imagesContainerName
    predictionsContainerName: predictionsContainerName
    modelsContainerName: modelsContainerName
    jobsContainerName: jobsContainerName
    featuresContainerName: featuresContainerName
    shardQueueName: shardQueueName
    reviewSignInClientId: reviewSignInClientId
  }
}

module eventGridTopic 'modules/eventGridTopic.bicep' = {
  name: 'eventGridTopic'
  dependsOn: [
    storage
  ]
  params: {
    location: location
    tags: allTags
    name: systemTopicName
    storageAccountName: storageAccountName
  }
}

module registry 'modules/registry.bicep' = {
  name: 'registry'
  params: {
    location: location
    tags: allTags
    name: registryName
    skuName: containerRegistrySku
  }
}

module trainJob 'modules/trainJob.bicep' = {
  name: 'trainJob'
  dependsOn: [
    storage
  ]
  params: {
    location: location
    tags: allTags
    environmentName: 'cae-${nameStem}-${resourceToken}'
    jobName: take('caj-train-${resourceToken}', 32)
    identityName: 'id-trainjob-${nameStem}-${resourceToken}'
    registryName: registryName
    storageAccountName: storageAccountName
    logAnalyticsId: monitoring.outputs.logAnalyticsId
    gpuWorkloadProfileType: gpuWorkloadProfileType
    image: empty(trainJobImageTag)
      ? placeholderImage
      : '${registry.outputs.loginServer}/${trainJobImageRepository}:${trainJobImageTag}'
    imageFromRegistry: !empty(trainJobImageTag)
    args: trainJobArgs
    cpu: trainJobCpu
    memory: trainJobMemory
    replicaTimeoutSeconds: trainJobTimeoutSeconds
    jobsContainerName: jobsContainerName
    featuresContainerName: featuresContainerName
    shardQueueName: shardQueueName
  }
}

// Names, ids and URLs only: nothing here is a secret.
output AZURE_LOCATION string = location
output STORAGE_ACCOUNT_NAME string = storage.outputs.name
output STORAGE_BLOB_ENDPOINT string = storage.outputs.blobEndpoint
output FUNCTION_APP_NAME string = functionApp.outputs.name
output FUNCTION_APP_URL string = 'https://${functionApp.outputs.defaultHostName}'
output FUNCTION_APP_PRINCIPAL_ID string = functionApp.outputs.principalId
output APPLICATION_INSIGHTS_NAME string = monitoring.outputs.appInsightsName
output LOG_ANALYTICS_WORKSPACE_ID string = monitoring.outputs.logAnalyticsId
output EVENT_GRID_SYSTEM_TOPIC_NAME string = eventGridTopic.outputs.name
output IMAGES_CONTAINER_NAME string = imagesContainerName
output PREDICTIONS_CONTAINER_NAME string = predictionsContainerName
output CONTAINER_REGISTRY_NAME string = registry.outputs.name
output CONTAINER_REGISTRY_LOGIN_SERVER string = registry.outputs.loginServer
output CONTAINER_REGISTRY_SKU string = containerRegistrySku
output TRAINJOB_IMAGE_REPOSITORY string = trainJobImageRepository
output CONTAINER_APPS_ENVIRONMENT_NAME string = trainJob.outputs.environmentName
output TRAINJOB_NAME string = trainJob.outputs.jobName
output TRAINJOB_IDENTITY_CLIENT_ID string = trainJob.outputs.identityClientId
output TRAINJOB_IDENTITY_PRINCIPAL_ID string = trainJob.outputs.identityPrincipalId
